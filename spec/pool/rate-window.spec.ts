import { SMTPInvalidArgumentError } from '../../lib/errors';
import { lastValueFrom, mergeMap, range, toArray } from 'rxjs';
import { SlidingWindow } from '../../lib/pool/rate-window';
import { ManualClock } from './manual-clock';
import { BODY, Bench, until } from './setup';
import { defined } from '../helpers/defined';

/** The most starts found in any window [t, t + perMs). */
function busiestWindow(starts: readonly number[], perMs: number): number {
  let most = 0;
  let j = 0;
  starts.forEach((start, i) => {
    while (start - defined(starts[j], 'an earlier start') >= perMs) j++;
    most = Math.max(most, i - j + 1);
  });
  return most;
}

describe('SlidingWindow', () => {
  it('allows `messages` starts at once, then the next exactly perMs after the oldest', () => {
    const clock = new ManualClock();
    const window = new SlidingWindow({ messages: 3, perMs: 1_000 }, clock);
    for (let i = 0; i < 3; i++) {
      expect(window.wait()).toBe(0);
      window.take();
    }
    expect(window.wait()).toBe(1_000);
    clock.advance(999);
    expect(window.wait()).toBe(1);
    clock.advance(1);
    expect(window.wait()).toBe(0);
  });

  it('never lets more than `messages` starts into any window, and wastes none of them', () => {
    const clock = new ManualClock();
    const window = new SlidingWindow({ messages: 7, perMs: 100 }, clock);
    const starts: number[] = [];
    // A greedy, irregular producer: tries at every ms, sometimes several times.
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let t = 0; t < 10_000; t++) {
      for (let tries = Math.floor(random() * 4); tries > 0; tries--) {
        if (window.wait() === 0) {
          window.take();
          starts.push(clock.now());
        }
      }
      clock.advance(1);
    }
    expect(busiestWindow(starts, 100)).toBe(7);
    // Exact, not merely safe: close to the full rate over the run.
    expect(starts.length).toBeGreaterThan(0.9 * 7 * 100);
  });

  it('rejects a limit that allows nothing', () => {
    expect(() => new SlidingWindow({ messages: 0, perMs: 1_000 }, new ManualClock())).toThrow(SMTPInvalidArgumentError);
  });
});

describe('SMTPPool rateLimit', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('starts at most `messages` transactions in any window of perMs, counted at the server', async () => {
    const clock = new ManualClock();
    const mailsAt: number[] = [];
    const fake = await bench.fake({
      handlers: {
        MAIL: () => {
          mailsAt.push(clock.now());
          return '250 2.1.0 Ok';
        },
      },
    });
    const pool = bench.pool(fake.port, { rateLimit: { messages: 3, perMs: 1_000 }, scheduler: clock });
    const done = lastValueFrom(
      range(0, 8).pipe(
        mergeMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY)),
        toArray(),
      ),
    );
    await until(() => mailsAt.length === 3);
    expect(pool.stats.queued).toBe(5);
    // Starts happen in the clock's callbacks, synchronously: nothing may start one ms early.
    clock.advance(999);
    expect(pool.stats.queued).toBe(5);
    clock.advance(1);
    expect(pool.stats.queued).toBe(2);
    await until(() => mailsAt.length === 6);
    clock.advance(1_000);
    expect(pool.stats.queued).toBe(0);
    await done;
    expect(mailsAt).toEqual([0, 0, 0, 1_000, 1_000, 1_000, 2_000, 2_000]);
    expect(busiestWindow(mailsAt, 1_000)).toBe(3);
  });
});
