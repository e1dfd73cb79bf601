// ESLint (flat config): typescript-eslint's type-checked rules on every TypeScript file, each file checked
// against the tsconfig it really compiles with; Prettier owns the layout (eslint-config-prettier, last).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** A block of TypeScript files type-checked with `project`. */
const typed = (files, project, extra = {}) => ({
  files,
  languageOptions: { parserOptions: { project, tsconfigRootDir: import.meta.dirname } },
  ...extra,
});

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'build/', 'coverage/', '.mta/', 'bench/results/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.strictTypeChecked],
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
    },
  },
  // The package: compiled by tsconfig.build.json (Node types only, no jest globals).
  typed(['lib/**/*.ts'], './tsconfig.build.json'),
  // jest (npm test, test:mta) compiles the specs with tsconfig.json.
  typed(['spec/**/*.ts', 'spec-mta/**/*.ts'], './tsconfig.json'),
  // The browser suite and the web demo it drives: spec-web/tsconfig.json (adds the DOM).
  typed(['spec-web/**/*.ts'], './spec-web/tsconfig.json'),
  typed(['demos/**/*.ts'], './tsconfig.demos.json'),
  typed(['bench/**/*.ts'], './bench/tsconfig.json'),
  // Plain JavaScript: the build scripts and config files (Node, CommonJS or ESM), and the web demo's page.
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
  },
  { files: ['**/*.js'], languageOptions: { sourceType: 'commonjs', globals: globals.node } },
  { files: ['**/*.mjs'], languageOptions: { sourceType: 'module', globals: globals.node } },
  {
    files: ['demos/web/public/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, rxjs: 'readonly' } },
  },
  prettier,
);
