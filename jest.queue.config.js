/**
 * The queue suite (spec-queue/): rx-smtp/queue against a private redis-server (Debian's), started
 * by the global setup on a free 127.0.0.1 port with its data under build/queue-redis/, stopped
 * after. One worker: the tests share that Redis, and one of them restarts it.
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec-queue'],
  testMatch: ['**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  globalSetup: '<rootDir>/spec-queue/global-setup.ts',
  globalTeardown: '<rootDir>/spec-queue/global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 1,
};
