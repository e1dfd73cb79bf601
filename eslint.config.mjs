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
      // Reply codes, ports, sizes and counts go into messages all the time, and a number prints
      // exactly; everything else strict keeps out (undefined, objects, booleans, any) stays out.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowAny: false, allowBoolean: false, allowNever: false, allowNullish: false, allowNumber: true, allowRegExp: false },
      ],
      // `(x) => subject.next(x)` and `if (done) return this.fail(err);` in a void function are the
      // house style (RxJS callbacks, early exits); a void value used as a value is still an error.
      '@typescript-eslint/no-confusing-void-expression': [
        'error',
        { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true },
      ],
      // `import x = require('m')` is TypeScript's own form for an `export =` module (email-addresses).
      '@typescript-eslint/no-require-imports': ['error', { allowAsImport: true }],
      // `{ address: _address, ...options }` drops a field; `_` marks a parameter kept for its position
      // (tsc's noUnusedParameters already follows the same convention).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  // The package: compiled by tsconfig.build.json (Node types only, no jest globals). The wire and
  // message layers match C0 controls on purpose: refusing CR, LF and NUL before the wire is their job.
  typed(['lib/**/*.ts'], './tsconfig.build.json', { rules: { 'no-control-regex': 'off' } }),
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
