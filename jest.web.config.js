/**
 * The browser suite (spec-web/): the web demo driven in Debian's headless Chromium
 * (/usr/bin/chromium, or CHROMIUM_PATH) by playwright-core. Kept out of `npm test`: a browser is slow to start.
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec-web'],
  testMatch: ['**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'spec-web/tsconfig.json' }] },
  testTimeout: 60000,
  maxWorkers: 1,
};
