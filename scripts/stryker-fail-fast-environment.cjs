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
    if (event.name === 'test_skip' || event.name === 'test_todo') this.forgetCurrentTest();
    const active = process.env[ACTIVE];
    if (active === undefined) return;
    if (event.name === 'test_fn_failure' || (event.name === 'hook_failure' && event.hook.type !== 'afterAll')) {
      failedMutant = active;
    } else if (event.name === 'test_start' && failedMutant === active) {
      event.test.mode = 'skip';
    }
  }

  /**
   * Stryker's perTest coverage names the running test on `test_start` and forgets it on `test_done`,
   * but a skipped test gets `test_skip` instead: its name stayed current, and every module-level
   * statement the next spec file ran on import was counted as covered by that skipped test. Such a
   * "hybrid" mutant is then tested by that one test alone, which never runs: a false survivor (the
   * seed-3 sample had 9, among them reply.ts's enhanced-status regex, which reply.spec.ts kills). The
   * only skipped tests here are the ones jest.stryker.config.js's testNamePattern leaves out.
   */
  forgetCurrentTest() {
    const context = this.global[this.global.__strykerGlobalNamespace__ ?? '__stryker__'];
    if (context) context.currentTestId = undefined;
  }
}

module.exports = FailFastEnvironment;
