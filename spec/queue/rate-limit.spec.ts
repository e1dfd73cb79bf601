import fc from 'fast-check';
import { BullLimiter, limiterFor } from '../../lib/queue/rate-limit';
import { defined } from '../helpers/defined';

/**
 * BullMQ's limiter as its Lua runs it (`prepareJobForProcessing`): the first start after the
 * counter expired sets it to 1 with a TTL of `duration`; a start is allowed while the counter is
 * under `max`. Returns the starts it let through among `attempts` (times in ms, ascending).
 */
function bullmqStarts(limiter: BullLimiter, attempts: readonly number[]): number[] {
  const starts: number[] = [];
  let count = 0;
  let expires = -Infinity;
  for (const t of attempts) {
    if (t >= expires) {
      count = 0;
      expires = t + limiter.duration;
    }
    if (count < limiter.max) {
      count++;
      starts.push(t);
    }
  }
  return starts;
}

/** The most starts in any interval [x, x + perMs). */
function busiest(starts: readonly number[], perMs: number): number {
  let most = 0;
  let j = 0;
  starts.forEach((start, i) => {
    while (start - defined(starts[j], 'an earlier start') >= perMs) j++;
    most = Math.max(most, i - j + 1);
  });
  return most;
}

describe('limiterFor', () => {
  it.each([
    [
      { messages: 200, perMs: 1000 },
      { max: 9, duration: 50 },
    ],
    [
      { messages: 1, perMs: 1000 },
      { max: 1, duration: 1050 },
    ],
    [
      { messages: 10, perMs: 1000 },
      { max: 1, duration: 105 },
    ],
    [
      { messages: 5, perMs: 60 },
      { max: 2, duration: 55 },
    ],
  ])('maps %j to %j', (limit, limiter) => {
    expect(limiterFor(limit)).toEqual(limiter);
  });

  it('shows why: BullMQ given 200 per 1000 ms lets 399 start within one second', () => {
    const naive = { max: 200, duration: 1000 };
    // A start at 0 opens the window; 199 more at its very end, and 200 as the next one opens.
    const attempts = [0, ...Array.from({ length: 199 }, () => 999), ...Array.from({ length: 200 }, () => 1000)];
    expect(busiest(bullmqStarts(naive, attempts), 1000)).toBe(399);
    expect(busiest(bullmqStarts(limiterFor({ messages: 200, perMs: 1000 }), attempts), 1000)).toBeLessThanOrEqual(200);
  });

  it('never lets more than the limit start in any interval of perMs + slack, whatever the attempts', () => {
    // Bursts of attempts at arbitrary moments: the worst case is a burst at a window's end.
    const burst = (perMs: number, messages: number) =>
      fc.record({ gap: fc.integer({ min: 0, max: perMs + 5 }), size: fc.integer({ min: 1, max: messages + 1 }) });
    const limits = fc.record({
      messages: fc.integer({ min: 1, max: 400 }),
      perMs: fc.integer({ min: 1, max: 3000 }),
      slack: fc.integer({ min: 0, max: 100 }),
    });
    fc.assert(
      fc.property(
        limits.chain((limit) =>
          fc.tuple(fc.constant(limit), fc.array(burst(limit.perMs, limit.messages), { minLength: 1, maxLength: 60 })),
        ),
        ([limit, bursts]) => {
          let t = 0;
          const attempts = bursts.flatMap(({ gap, size }) => {
            t += gap;
            return new Array<number>(size).fill(t);
          });
          // Starts that close together reach the server within perMs, give or take the slack.
          return (
            busiest(bullmqStarts(limiterFor(limit, limit.slack), attempts), limit.perMs + limit.slack) <= limit.messages
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('lets at least half the limit through when the queue is full (starts tried all the time)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 3000 }), (messages, perMs) => {
        const { max, duration } = limiterFor({ messages, perMs }, 0);
        // Saturated: each window opens the moment the last one expires, and fills at once.
        const windows = Math.floor((10 * perMs) / duration);
        return windows * max >= (messages / 2) * 10 - max;
      }),
      { numRuns: 300 },
    );
    expect(limiterFor({ messages: 200, perMs: 1000 })).toEqual({ max: 9, duration: 50 }); // 180 a second, full
  });

  it.each([
    [{ messages: 0, perMs: 1000 }, /messages/],
    [{ messages: 1.5, perMs: 1000 }, /messages/],
    [{ messages: 10, perMs: 0 }, /perMs/],
    [{ messages: 10, perMs: Number.NaN }, /perMs/],
  ])('refuses %j', (limit, why) => {
    expect(() => limiterFor(limit)).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT', message: expect.stringMatching(why) }),
    );
  });
});
