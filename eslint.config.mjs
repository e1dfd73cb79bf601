// ESLint (flat config): typescript-eslint's type-checked rules on every TypeScript file, each file checked
// against the tsconfig it really compiles with; Prettier owns the layout (eslint-config-prettier, last).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const browserWithoutObservable = Object.fromEntries(
  Object.entries(globals.browser).filter(([name]) => name !== 'Observable'),
);

/** A block of TypeScript files type-checked with `project`. */
const typed = (files, project, extra = {}) => ({
  files,
  languageOptions: { parserOptions: { project, tsconfigRootDir: import.meta.dirname } },
  ...extra,
});

export default defineConfig(
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
        {
          allowAny: false,
          allowBoolean: false,
          allowNever: false,
          allowNullish: false,
          allowNumber: true,
          allowRegExp: false,
        },
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
  // Each file against the tsconfig it compiles with. jest (npm test, test:mta, test:queue) uses
  // tsconfig.json, which includes every TypeScript folder: the default for what is not named below.
  typed(['**/*.ts'], './tsconfig.json'),
  // The package: tsconfig.build.json (Node types only, no jest globals).
  typed(['lib/**/*.ts'], './tsconfig.build.json'),
  // The browser suite and the web demo it drives: spec-web/tsconfig.json (adds the DOM).
  typed(['spec-web/**/*.ts'], './spec-web/tsconfig.json'),
  typed(['demos/**/*.ts'], './tsconfig.demos.json'),
  typed(['bench/**/*.ts'], './bench/tsconfig.json'),
  // The wire and message layers match C0 controls on purpose: refusing CR, LF and NUL is their job.
  { files: ['lib/**/*.ts'], rules: { 'no-control-regex': 'off' } },
  // What does not fit tests, and only there:
  {
    files: ['spec/**/*.ts', 'spec-mta/**/*.ts', 'spec-queue/**/*.ts', 'spec-web/**/*.ts'],
    rules: {
      // jest's asymmetric matchers (expect.any, objectContaining, stringMatching…) are typed `any`:
      // these two would flag every expectation that uses one (unsafe member access, call and
      // return stay on).
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      // `fake!` for what beforeEach/the test itself just set up: wrong, it fails the test at once.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // jest.isolateModules/doMock need require() to load a module afresh.
      '@typescript-eslint/no-require-imports': 'off',
      // Async generators stand in for streamed bodies (AsyncIterable) with nothing to await.
      '@typescript-eslint/require-await': 'off',
    },
  },
  // Plain JavaScript: the build scripts and config files (Node, CommonJS or ESM), and the web demo's page.
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
  },
  { files: ['**/*.js'], languageOptions: { sourceType: 'commonjs', globals: globals.node } },
  { files: ['**/*.mjs'], languageOptions: { sourceType: 'module', globals: globals.node } },
  {
    // The page loads RxJS's UMD bundle; its own `Observable` (from rxjs) shadows the browser's new one.
    files: ['demos/web/public/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...browserWithoutObservable, rxjs: 'readonly' } },
  },
  prettier,
  // Prettier wraps code at 120 columns but never a comment or a string: the limit for lib/
  // is checked here (after eslint-config-prettier, which turns max-len off).
  {
    files: ['lib/**/*.ts'],
    ignores: ['lib/wire/encoder-wasm.ts'],
    rules: { 'max-len': ['error', { code: 120, ignoreUrls: true }] },
  },
);
