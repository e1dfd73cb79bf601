import { describe as describeReport, runSoak, verdict } from '../../bench/soak';

/**
 * The fault soak of issue 11 §3, small enough for `npm test` (`npm run soak` runs 20,000): 1,000
 * messages through the pool to a server that cuts connections (FIN and RST) at every step and
 * refuses some commands. SEED replays a run; the seed is in the failure message.
 */
describe('SMTPPool fault soak', () => {
  it('gives every message one outcome that matches what the server committed, and leaves no handle', async () => {
    const seed = Number(process.env.SEED ?? 1130);
    const report = await runSoak({ seed, messages: 1_000, maxSeconds: 12 });
    const summary = describeReport(report);
    expect({ broken: verdict(report), summary }).toEqual({ broken: [], summary });
    expect(report.fed).toBe(1_000);
    // The faults happened, and the pool recovered from them: most messages went through.
    expect(Object.keys(report.faults).length).toBeGreaterThan(10);
    expect(report.outcomes.sent).toBeGreaterThan(800);
  }, 30_000);
});
