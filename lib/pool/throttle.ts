import { SMTPRecipientsRefused, hasCode } from '../errors';
import { Reply } from '../wire/reply';

/** Where a "slow down" came: refusing a connection (greeting, EHLO) or a transaction. */
export type ThrottleStage = 'connect' | 'transaction';

/**
 * One kind of "slow down" reply: its code is one of `codes` and, when given,
 * its enhanced status matches `enhanced` or its text matches `text` (either
 * suffices); `stage` limits it to connections or to transactions.
 */
export interface ThrottleRule {
  readonly codes: readonly number[];
  readonly stage?: ThrottleStage;
  readonly enhanced?: RegExp;
  readonly text?: RegExp;
}

const TRANSIENT_REFUSALS = [421, 450, 451, 452, 454];

/** The replies that mean "slow down"; `throttle.rules` adds to them. */
export const THROTTLE_RULES: readonly ThrottleRule[] = [
  // RFC 5321 §4.2.2 / §3.1: a 421 instead of the greeting: the server takes no more connections now.
  { codes: [421], stage: 'connect' },
  // RFC 3463 §3.8: X.7.X is policy; a transient one (4.7.0, 4.7.1 …) is the provider's rate or reputation gate.
  { codes: TRANSIENT_REFUSALS, enhanced: /^4\.7\.\d{1,3}$/ },
  // Providers' own words: Amazon SES "Throttling failure: Maximum sending rate exceeded",
  // Postfix anvil "Error: too much mail from …", Exchange/Gmail "try again later", "rate limit".
  {
    codes: TRANSIENT_REFUSALS,
    text: new RegExp(
      [
        'throttl',
        'rate limit',
        'rate exceeded',
        'too much mail',
        'too many (messages|connections|sessions)',
        'try again later',
        'slow down',
      ].join('|'),
      'i',
    ),
  },
];

/** Adaptive throttling of a pool (on by default; `throttle: false` turns it off). */
export interface ThrottleOptions {
  /** More "slow down" replies, checked after `THROTTLE_RULES`. */
  readonly rules?: readonly ThrottleRule[];
  /** ms a `send$`/`sendAll` message may spend being throttled before it ends `failed`. Default 600 000. */
  readonly budgetMs?: number;
  /** ms without a "slow down" before each additive increase. Default 5 000. */
  readonly quietMs?: number;
}

/**
 * The stage at which `err` said "slow down", or undefined when it is no throttle signal.
 * Refused recipients are one when every refusal is one (the others are the message's own fault).
 */
export function throttleStage(err: unknown, rules: readonly ThrottleRule[]): ThrottleStage | undefined {
  const stage: ThrottleStage =
    hasCode(err, 'ERR_SMTP_CONNECT') || hasCode(err, 'ERR_SMTP_HELO') ? 'connect' : 'transaction';
  const replies = repliesOf(err);
  if (replies.length === 0) return undefined;
  return replies.every((reply) => rules.some((rule) => matches(rule, reply, stage))) ? stage : undefined;
}

/** The reply that said "slow down", for events and logs. */
export function throttleReply(err: unknown): Reply | undefined {
  return repliesOf(err)[0];
}

function matches(rule: ThrottleRule, reply: Reply, stage: ThrottleStage): boolean {
  if (!rule.codes.includes(reply.code) || (rule.stage && rule.stage !== stage)) return false;
  if (!rule.enhanced && !rule.text) return true;
  return (
    (reply.enhancedStatus !== undefined && rule.enhanced?.test(reply.enhancedStatus) === true) ||
    rule.text?.test(reply.message) === true
  );
}

function repliesOf(err: unknown): Reply[] {
  if (hasCode(err, 'ERR_SMTP_RECIPIENTS_REFUSED')) return Object.values((err as SMTPRecipientsRefused).recipients);
  const e = err as { reply?: Reply; smtpCode?: unknown; smtpError?: unknown } | null;
  if (e?.reply) return [e.reply];
  if (typeof e?.smtpCode === 'number') {
    const text = typeof e.smtpError === 'string' ? e.smtpError : '';
    return [{ code: e.smtpCode, message: text, lines: [text] }];
  }
  return [];
}

/** Starts a paced throttle lets through at once after a pause, in ms of its rate. */
const BURST_MS = 50;
/** How many transaction ends the pool weighs to tell a rate limit from one message's bad luck. */
const WINDOW = 50;
/** The share of slow-downs among them that means the server's limit: a quarter. */
const DENSE_SHARE = 0.25;

/**
 * The AIMD state of a pool: a connection target and a start rate, halved on
 * a "slow down" and raised by a step after each quiet period, released once
 * the target is back at the pool's maximum and the pace no longer binds.
 *
 * One decrease per round trip, as in TCP congestion control: a signal from
 * work that started before the last decrease (the `epoch` it started in) is
 * the same congestion, already answered.
 *
 * Unlike a router, a mail server says "slow down" for reasons of one message too (a 4.7.1
 * greylisting, a policy on one sender), and at thousands of messages a second such
 * replies come several times per round trip: halving on each would take the pool down
 * to a few messages a second (measured: 1 % of "451 4.7.1 slow down" gave ~6 msg/s). A
 * server's rate limit refuses most of what passes it, so the rate is lowered only when
 * slow-downs are dense: a quarter of the last transactions since the last decrease, and
 * all of them while there are few. A connection refused at the greeting lowers the
 * connection target at once: that reply is about the pool, never about a message.
 */
export class Throttle {
  /** Decreases since the last release. */
  level = 0;
  epoch = 0;
  connections: number;
  /** Starts per second; undefined: unpaced. */
  rate: number | undefined;
  private step = 1;
  private nextStart = -Infinity;
  /** The last transaction ends since the last decrease (true: a slow-down), a ring of WINDOW. */
  private readonly recent: boolean[] = [];
  private next = 0;
  private slowDowns = 0;

  constructor(private readonly maxConnections: number) {
    this.connections = maxConnections;
  }

  /**
   * A "slow down" from work started in `epoch`. `observedRate`: starts in the last second.
   * @return whether it lowered the limits.
   */
  decrease(stage: ThrottleStage, epoch: number, observedRate: number): boolean {
    if (epoch < this.epoch || (stage === 'transaction' && !this.congested())) return false;
    this.epoch++;
    this.recent.length = this.next = this.slowDowns = 0;
    this.level++;
    if (stage === 'connect') this.connections = Math.max(1, Math.floor(this.connections / 2));
    else {
      this.rate = Math.max(1, (this.rate ?? observedRate) / 2);
      this.step = Math.max(1, this.rate / 8);
    }
    return true;
  }

  /** A transaction ended: `slowDown` when its reply said "slow down". */
  observe(slowDown: boolean): void {
    if (this.recent.length === WINDOW) this.slowDowns -= this.recent[this.next] ? 1 : 0;
    this.recent[this.next] = slowDown;
    this.next = (this.next + 1) % WINDOW;
    if (slowDown) this.slowDowns++;
  }

  /** Whether the slow-downs are dense enough to be the server's limit (see the class). */
  private congested(): boolean {
    const seen = this.recent.length;
    return (
      this.slowDowns > 0 &&
      this.slowDowns >= Math.min(seen, Math.ceil(WINDOW * DENSE_SHARE)) &&
      this.slowDowns >= seen * DENSE_SHARE
    );
  }

  /**
   * A quiet period passed: one step up. The pace is dropped only once it no longer binds
   * (`observedRate`, starts in the last second, is under half of it): dropping it while it
   * binds would let the pool burst into the server's limit again.
   * @return whether that released the throttle (back to the pool's own limits).
   */
  increase(observedRate: number): boolean {
    this.connections = Math.min(this.maxConnections, this.connections + 1);
    if (this.rate !== undefined) this.rate = observedRate < this.rate / 2 ? undefined : this.rate + this.step;
    if (this.connections < this.maxConnections || this.rate !== undefined) return false;
    this.level = 0;
    return true;
  }

  /** ms until the pace allows a start: 0 when it does now. */
  wait(now: number): number {
    return this.rate === undefined ? 0 : Math.max(0, this.nextStart - now);
  }

  /** Records a start now (after `wait` said 0). */
  take(now: number): void {
    if (this.rate !== undefined) this.nextStart = Math.max(this.nextStart, now - BURST_MS) + 1000 / this.rate;
  }
}
