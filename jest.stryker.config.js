/**
 * The suite StrykerJS runs against each mutant (stryker.config.js): the unit and loopback specs
 * that exercise lib/ directly. Left out: spec/package.spec.ts, spec/packed-package.spec.ts, spec/cli/ and the built-package case of
 * encoder-kernel.spec.ts, which test dist/ (not copied to Stryker's sandbox, and never mutated),
 * and spec-mta/ (a separate config already). Type errors are the TypeScript checker's job, so
 * ts-jest only transpiles: a full type-check per spec file would dominate every run.
 * @type {import('jest').Config}
 */
const path = require('node:path');
const base = require('./jest.config.js');
const { compilerOptions } = require('./tsconfig.json');

module.exports = {
  ...base,
  testPathIgnorePatterns: [
    '/node_modules/',
    '<rootDir>/spec/package\\.spec\\.ts$',
    '<rootDir>/spec/packed-package\\.spec\\.ts$',
    // The command's specs run the built binary (dist/).
    '<rootDir>/spec/cli/',
    '<rootDir>/spec/session/large-body\\.spec\\.ts$',
    // Its worker case runs the built package in a child process.
    '<rootDir>/spec/queue/unreachable\\.spec\\.ts$',
    // The slowest specs of lib/pool and lib/queue (10,000 messages, throttling over seconds, BullMQ's
    // job data): their code is outside the mutated files, which faster specs reach on the same paths.
    // A survivor runs every test that reaches it, so these would cost each survivor ~20 s. The score
    // is measured without them: a lower bound (a mutant only they would kill counts as survived).
    '<rootDir>/spec/pool/throttle\\.spec\\.ts$',
    '<rootDir>/spec/pool/send-all\\.spec\\.ts$',
    '<rootDir>/spec/queue/',
  ],
  // lib/ in the roots, so jest's dependency graph reaches a mutated file through lib/ itself (a spec of
  // the pool reaches lib/wire/reply.ts through lib/transport): findRelatedTests (stryker.config.js) then
  // loads only the specs that import it. Loading every spec file for every mutant, with the name filter
  // leaving most of them empty, was most of the run's time.
  roots: ['<rootDir>/spec', '<rootDir>/lib'],
  // Node's environment, plus: once a test fails under a mutant, the mutant's remaining tests are skipped
  // (the verdict is already "killed"; see the file).
  testEnvironment: process.env.RX_SMTP_NO_FAIL_FAST
    ? 'node'
    : path.join(__dirname, 'scripts', 'stryker-fail-fast-environment.cjs'),
  testNamePattern: '^(?!encoder-kernel in a Node\\.js without WebAssembly)',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: { ...compilerOptions, isolatedModules: true } }] },
};
