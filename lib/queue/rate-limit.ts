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
 * How much the delay from a job's start to its message reaching the server may vary, and the limit
 * still hold at the server: the marker's round trip, the pool's dispatch, a busy event loop.
 */
export const START_JITTER_MS = 50;

/**
 * The BullMQ limiter that keeps every interval of `perMs` at or under `messages` messages at the
 * server, queue-wide, at the highest rate it can.
 *
 * BullMQ counts job starts in fixed windows: the first start opens a window of `duration` ms, and
 * the `max` starts it allows may all fall at its end, next to those of the following one. So
 * `{ max: 200, duration: 1000 }` lets up to 399 jobs start within one second. Windows begin at
 * least `duration` apart, each with its first start; so an interval of `L` ms meets at most
 * ⌈L / duration⌉ windows that begin inside it, plus the `max − 1` later starts of one that began
 * before it. A message reaches the server a little after its start, and that delay varies: the
 * starts that the server sees within `perMs` lie within `L = perMs + slackMs`. With k windows in
 * `L` (`duration = ⌈L / k⌉`, no shorter than 50 ms) that is `k·max + max − 1 ≤ messages`, so
 * `max = ⌊(messages + 1) / (k + 1)⌋`, and the k with the highest `max / duration` wins: 200 per
 * second becomes 9 per 50 ms, 180 per second when the queue is full.
 *
 * ```
 * limiterFor({ messages: 200, perMs: 1000 })  // { max: 9, duration: 50 }
 * limiterFor({ messages: 1, perMs: 1000 })    // { max: 1, duration: 1050 }
 * ```
 *
 * @param limit the queue-wide limit.
 * @param slackMs how much the delay from start to server may vary (`START_JITTER_MS`).
 * @return the limiter every worker of the queue is given.
 */
export function limiterFor(limit: RateLimit, slackMs = START_JITTER_MS): BullLimiter {
  const { messages, perMs } = limit;
  if (!(Number.isInteger(messages) && messages > 0))
    throw invalid(`rateLimit.messages must be a positive integer, got ${messages}`);
  if (!(Number.isInteger(perMs) && perMs > 0))
    throw invalid(`rateLimit.perMs must be a positive integer, got ${perMs}`);
  const span = perMs + slackMs;
  let best: BullLimiter = { max: Math.floor((messages + 1) / 2), duration: span };
  const windows = Math.min(messages, Math.floor(span / MIN_WINDOW_MS));
  for (let k = 2; k <= windows; k++) {
    const candidate = { max: Math.floor((messages + 1) / (k + 1)), duration: Math.ceil(span / k) };
    if (candidate.max / candidate.duration > best.max / best.duration) best = candidate;
  }
  return best;
}

function invalid(text: string): SMTPInvalidArgumentError {
  return new SMTPInvalidArgumentError(`rx-smtp/queue: ${text}`);
}
