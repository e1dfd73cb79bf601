import { SMTPInvalidArgumentError } from '../errors';
import { SchedulerLike } from 'rxjs';

/** At most `messages` transaction starts in any `perMs` milliseconds. */
export interface RateLimit {
  readonly messages: number;
  readonly perMs: number;
}

/**
 * An exact sliding-window limit on starts: never more than `messages` starts in
 * any interval of `perMs` ms, whatever the interval's position. Unlike a token
 * bucket it allows no burst over the limit: a start waits until the start
 * `messages` places before it is at least `perMs` old.
 *
 * ```
 * 3 per 10:  starts at 0 0 0 | 10 10 | 12 ...   (the 4th waits until 0 + 10)
 * ```
 *
 * The clock is the scheduler's, so tests run it on virtual time.
 */
export class SlidingWindow {
  /** The last `messages` start times, oldest at `next` (a ring). */
  private readonly starts: number[] = [];
  private next = 0;

  constructor(
    private readonly limit: RateLimit,
    private readonly clock: Pick<SchedulerLike, 'now'>,
  ) {
    if (!(Number.isInteger(limit.messages) && limit.messages > 0 && limit.perMs > 0)) {
      throw new SMTPInvalidArgumentError(
        `rateLimit needs a positive integer of messages and a positive perMs, got ${JSON.stringify(limit)}`,
      );
    }
  }

  /** How long until a start is allowed: 0 when one is allowed now. */
  wait(): number {
    // Until the ring is full, no start is `messages` places back.
    const oldest = this.starts.length < this.limit.messages ? undefined : this.starts[this.next];
    return oldest === undefined ? 0 : Math.max(0, oldest + this.limit.perMs - this.clock.now());
  }

  /** Records a start now; the caller checked `wait()` was 0. */
  take(): void {
    const now = this.clock.now();
    if (this.starts.length < this.limit.messages) this.starts.push(now);
    else {
      this.starts[this.next] = now;
      this.next = (this.next + 1) % this.limit.messages;
    }
  }
}
