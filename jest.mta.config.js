/**
 * The real-MTA suite (spec-mta/): Postfix, Dovecot and smtp-sink started by mta/start.sh,
 * described in .mta/env.json. One worker: the servers, their logs and Maildirs are shared.
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec-mta'],
  testMatch: ['**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 60000,
  maxWorkers: 1,
};
