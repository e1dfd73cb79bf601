/** The timer of one awaited reply: the step it belongs to and how long the server has. */
export interface ReplyTimer {
  readonly step: string;
  readonly ms: number;
}

/** The longest delay Node's setTimeout honours (2^31 - 1 ms); a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * The deadline of the reply awaited now (RFC 5321 §4.5.3.2: a timer per reply, running from when
 * that reply is the one awaited, so a transaction stacked behind another's final dot does not pay
 * for that wait).
 *
 * A bulk run reads thousands of replies a second, so the Node timer is not re-armed per reply nor
 * cleared when nothing is awaited: it fires at the earliest deadline it was set for and, when the
 * awaited reply changed since, waits for the rest of the new one's time.
 */
export class ReplyDeadline {
  private current: ReplyTimer | undefined;
  private deadline = 0;
  private timer: NodeJS.Timeout | undefined;
  private due = 0;

  /**
   * @param awaited the timer of the reply awaited now, if any (asked again when the timer fires).
   * @param expire called once when the awaited reply's time ran out.
   */
  constructor(
    private readonly awaited: () => ReplyTimer | undefined,
    private readonly expire: (timer: ReplyTimer) => void,
  ) {}

  /** Starts the clock of the reply awaited now (call each time the head of the queue changes). */
  arm(): void {
    const timer = this.awaited();
    // Nothing awaited: a running timer is left to find that out when it fires.
    if (!timer) return;
    this.current = timer;
    this.deadline = performance.now() + timer.ms;
    if (this.timer && this.due <= this.deadline) return;
    clearTimeout(this.timer);
    this.schedule(timer.ms);
  }

  /** Stops for good (the connection ended). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = undefined;
  }

  private schedule(ms: number): void {
    this.due = performance.now() + ms;
    this.timer = setTimeout(() => this.check(), Math.min(ms, MAX_TIMER_MS));
  }

  private check(): void {
    this.timer = undefined;
    const current = this.current;
    if (!current || !this.awaited()) return;
    const left = this.deadline - performance.now();
    if (left > 0) return this.schedule(left);
    this.expire(current);
  }
}
