import { SMTPInvalidArgumentError } from '../errors';
import type { RateLimit } from '../pool/rate-window';

/** BullMQ's limiter: at most `max` jobs start in a window of `duration` ms. */
export interface BullLimiter {
  readonly max: number;
  readonly duration: number;
}

/** The shortest window: shorter ones would have every idle worker poll Redis too often. */
const MIN_WINDOW_MS = 50;

/**
 * The BullMQ limiter that keeps every interval of `perMs` at or under `messages` job starts,
 * queue-wide, at the highest rate it can.
 *
 * BullMQ counts starts in fixed windows: the first start opens a window of `duration` ms, and the
 * `max` starts it allows may all fall at its end, next to the start of the following one. So
 * `{ max: 200, duration: 1000 }` lets up to 399 jobs start within one second. Windows of
 * `d = ⌈perMs / k⌉` ms start at least `d` apart and each begins with its first start, so an
 * interval of `perMs` meets at most k windows that begin inside it, plus the `max − 1` later starts
 * of one that began before it: `k·max + max − 1 ≤ messages`, or `max = ⌊(messages + 1) / (k + 1)⌋`.
 * The k (windows no shorter than 50 ms) with the highest `max / d` wins: 200 per second becomes
 * 10 per 53 ms, 189 per second when the queue is full, never more than 200 in any second.
 *
 * ```
 * limiterFor({ messages: 200, perMs: 1000 })  // { max: 10, duration: 53 }
 * limiterFor({ messages: 1, perMs: 1000 })    // { max: 1, duration: 1000 }
 * ```
 *
 * @param limit the queue-wide limit.
 * @return the limiter every worker of the queue is given.
 */
export function limiterFor(limit: RateLimit): BullLimiter {
  const { messages, perMs } = limit;
  if (!(Number.isInteger(messages) && messages > 0)) throw invalid(`rateLimit.messages must be a positive integer, got ${messages}`);
  if (!(Number.isInteger(perMs) && perMs > 0)) throw invalid(`rateLimit.perMs must be a positive integer, got ${perMs}`);
  let best: BullLimiter = { max: Math.floor((messages + 1) / 2), duration: perMs };
  const windows = Math.min(messages, Math.floor(perMs / MIN_WINDOW_MS));
  for (let k = 2; k <= windows; k++) {
    const candidate = { max: Math.floor((messages + 1) / (k + 1)), duration: Math.ceil(perMs / k) };
    if (candidate.max / candidate.duration > best.max / best.duration) best = candidate;
  }
  return best;
}

function invalid(text: string): SMTPInvalidArgumentError {
  return new SMTPInvalidArgumentError(`rx-smtp/queue: ${text}`);
}
