/**
 * The Jest environment of `npm run mutate` (jest.stryker.config.js): Node's, plus "stop at the first
 * failure" while a mutant is active.
 *
 * Why: Stryker turns Jest's `bail` off (Jest cannot bail programmatically) and its runner needs only
 * one failing test to call a mutant killed, yet every covering test still ran to its end. A mutant
 * that makes the loopback specs hang paid each hanging test's own deadline, one after the other,
 * until Stryker's timeout (30-40 s here) cut the run: a third of all mutants, most of the full run's
 * hours. With this environment, once a test of the active mutant fails, every later test of that
 * mutant is skipped, in this file and in the next ones (Stryker runs Jest in band, so this module's
 * state outlives one file). The verdict is unchanged: killed by the first failure, as before.
 *
 * The dry run (no active mutant) and plain `jest` runs are untouched: they run every test. Survivors
 * run every covering test too, since nothing failed.
 */
'use strict';

const { TestEnvironment } = require('jest-environment-node');

/** Stryker's switch: the id of the mutant under test, set in the worker's process for each run. */
const ACTIVE = '__STRYKER_ACTIVE_MUTANT__';

/** The mutant whose run has already seen a failing test. */
let failedMutant;

class FailFastEnvironment extends TestEnvironment {
  async handleTestEvent(event) {
    const active = process.env[ACTIVE];
    if (active === undefined) return;
    if (event.name === 'test_fn_failure' || (event.name === 'hook_failure' && event.hook.type !== 'afterAll')) {
      failedMutant = active;
    } else if (event.name === 'test_start' && failedMutant === active) {
      event.test.mode = 'skip';
    }
  }
}

module.exports = FailFastEnvironment;
