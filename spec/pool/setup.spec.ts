import { until } from './setup';

describe('until', () => {
  it('resolves once the condition holds', async () => {
    let polls = 0;
    await until(() => ++polls === 3);
    expect(polls).toBe(3);
  });

  it('fails with the condition in its message once the deadline passes', async () => {
    // Never read: the condition's source text (`polls++`) is what the failure must quote.
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    let polls = 0;
    await expect(until(() => (polls++, false), 20)).rejects.toThrow(/until: not met within 20 ms: .*polls\+\+/);
  });
});
