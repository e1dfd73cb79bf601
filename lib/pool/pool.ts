import {
  AsyncSubject,
  Observable,
  SchedulerLike,
  Subscription,
  asyncScheduler,
  Subject,
  catchError,
  concat,
  defer,
  filter,
  finalize,
  lastValueFrom,
  map,
  mergeMap,
  of,
  race,
  take,
  tap,
  throwError,
  timeout,
  timer,
} from 'rxjs';
import { SMTPInvalidArgumentError, SMTPPoolClosedError } from '../errors';
import { MailOptions, RcptOptions, Recipient } from '../session/envelope';
import { SessionConfig } from '../session/open-session';
import { parseServerUrl } from '../transport/url';
import { SendEvent, sendmail$ } from '../session/sendmail';
import { Session } from '../session/session';
import { Body, destroyBody } from '../wire/body-source';
import { Job } from './job';
import { PoolEvent, PoolLogger, PoolMonitor, PoolStats } from './monitor';
import {
  PoolMessage,
  SendOutcome,
  classifyFailure,
  mergeRefusals,
  refusalsAfter,
  refusalsOf,
  transientRefusals,
} from './outcome';
import { ConnectionLimits, PooledConnection } from './pooled-connection';
import { RateLimit, SlidingWindow } from './rate-window';
import { THROTTLE_RULES, Throttle, ThrottleOptions, ThrottleRule, throttleReply, throttleStage } from './throttle';

/** Retries of transient failures: at most `attempts` tries in all, `backoffMs` doubling between them. */
export interface RetryPolicy {
  /** Tries in all, the first included (1: no retry). */
  readonly attempts: number;
  /** The wait before the first retry; each further wait doubles. */
  readonly backoffMs: number;
  /** The longest wait. */
  readonly maxBackoffMs?: number;
}

export interface PoolConfig extends SessionConfig {
  /** Connections open at once, counted until their socket closes. Default 5. */
  readonly maxConnections?: number | undefined;
  /** Transactions per connection; then it says QUIT and a fresh one takes over. Default 100. */
  readonly maxMessagesPerConnection?: number | undefined;
  /** Transactions stacked on one connection when the server offers PIPELINING (else 1). Default 4. */
  readonly maxInFlightPerConnection?: number | undefined;
  /** ms a connection may sit without work before QUIT. Default 30 000; `Infinity`: never. */
  readonly idleTimeout?: number | undefined;
  /**
   * How many messages `sendAll` holds at once (waiting, in flight, or waiting to
   * retry): it reads the next message only when one of these has its outcome.
   * Default: twice the pool's capacity (connections × transactions in flight).
   */
  readonly queueLimit?: number | undefined;
  /** Starts of transactions (retries included) allowed in any window of `perMs`. Exact: no burst over it. */
  readonly rateLimit?: RateLimit | undefined;
  /**
   * Opening connections: a fresh connection that fails before use with a transient error (refused,
   * a 421 greeting, a timeout) is tried again after `backoffMs`, doubling, while messages wait for it.
   * The waiting messages fail once `attempts` opens in a row have failed with no other connection
   * left to serve them; a permanent refusal (a 5xx greeting) fails them at once.
   * Default `{ attempts: 3, backoffMs: 1000, maxBackoffMs: 30000 }`.
   */
  readonly connectRetry?: RetryPolicy | undefined;
  /** Retries of transient failures for `send$`/`sendAll`; none by default. */
  readonly retry?: RetryPolicy | undefined;
  /**
   * Recipients of a sent message refused with a 4xx get follow-up transactions of their own under
   * `retry` (the others already have the message); those still refused in the end are `deferred`.
   * Default false: they are reported `deferred` at once.
   */
  readonly retryRecipients?: boolean | undefined;
  /**
   * Adaptive throttling: replies that mean "slow down" (`THROTTLE_RULES`, plus `rules`) halve the
   * connection target (at connect) or the start rate (in a transaction), each quiet period raises
   * them a step; `send$`/`sendAll` requeue the message without counting an attempt, for at most
   * `budgetMs`. On by default; `false` turns it off.
   */
  readonly throttle?: ThrottleOptions | false | undefined;
  /**
   * Connection lifecycle and throttle changes are logged here (pino-compatible); never a secret.
   * The pool's connections do not log as sessions do (their life cycle is the pool's events).
   */
  readonly logger?: PoolLogger | undefined;
  /** The clock of the rate limit, backoff and idle timers (tests pass a virtual one). Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike | undefined;
}

/** Opening connections, unless `connectRetry` says otherwise. */
const CONNECT_RETRY: RetryPolicy = { attempts: 3, backoffMs: 1_000, maxBackoffMs: 30_000 };
const THROTTLE_BUDGET_MS = 600_000;
const THROTTLE_QUIET_MS = 5_000;
/** A message requeued after a slow-down waits this, doubling each time, up to the max. */
const THROTTLE_REQUEUE_MS = 50;
const THROTTLE_REQUEUE_MAX_MS = 30_000;

/**
 * Many SMTP connections behind one object, for bulk sending. Connections open
 * lazily, carry several transactions each (stacked when the server offers
 * PIPELINING), are reused, retired after `maxMessagesPerConnection` or
 * `idleTimeout`, replaced when they die, and never reused in an unknown state.
 *
 * ```ts
 * const pool = new SMTPPool({ host: 'mx.example', maxConnections: 8 });   // or { url: 'smtps://u:p@mx.example' }
 * messages$.pipe(mergeMap((m) => pool.sendmail$(m.from, m.to, m.body), 8));
 * messages$.pipe(sendAll(pool));   // one SendOutcome per message, with retries
 * await pool.close();
 * ```
 *
 * The constructor does no I/O.
 */
export class SMTPPool {
  readonly queueLimit: number;
  private readonly connections = new Set<PooledConnection>();
  private readonly queue: Job[] = [];
  private readonly scheduler: SchedulerLike;
  private readonly window?: SlidingWindow;
  private readonly maxConnections: number;
  private readonly limits: ConnectionLimits;
  private state: 'open' | 'closing' | 'destroyed' = 'open';
  private readonly drained = new AsyncSubject<void>();
  /** Emits when `close` or `destroy` begins. */
  private readonly stopping = new Subject<never>();
  private wakeUp: { readonly at: number; readonly timer: Subscription } | undefined;
  private readonly connectRetry: RetryPolicy;
  /** Fresh connections in a row that failed before use; an open that succeeds resets it. */
  private openFailures = 0;
  private reopenAt = -Infinity;
  private dispatching = false;
  private again = false;
  private readonly monitor: PoolMonitor;
  private readonly throttle: Throttle;
  /** What each connection's session is opened with: the config without the pool's logger. */
  private readonly sessionConfig: SessionConfig;
  /** The "slow down" replies; empty when throttling is off. */
  private readonly throttleRules: readonly ThrottleRule[];
  private relaxTimer: Subscription | undefined;
  private connectionIds = 0;

  /**
   * The pool's state, sampled when it changes, at most every 100 ms (the last change always shows):
   * connections, queue, outcome counters, start rate, throttle level. Starts with the current state.
   *
   * ```
   * pool.stats$:  s----s-s--s---   (no more often than every 100 ms)
   * ```
   */
  readonly stats$: Observable<PoolStats>;
  /** Connections opened, closed, failed; throttled and released. Hot: only what happens after subscribing. */
  readonly events$: Observable<PoolEvent>;

  constructor(private readonly config: PoolConfig = {}) {
    // A malformed `url` fails here rather than on every connection (session$ parses it again).
    if (config.url !== undefined) parseServerUrl(config.url);
    this.scheduler = config.scheduler ?? asyncScheduler;
    this.connectRetry = config.connectRetry ?? CONNECT_RETRY;
    positive('connectRetry.attempts', this.connectRetry.attempts);
    this.maxConnections = positive('maxConnections', config.maxConnections ?? 5);
    this.limits = {
      maxInFlight: positive('maxInFlightPerConnection', config.maxInFlightPerConnection ?? 4),
      maxMessages: positive('maxMessagesPerConnection', config.maxMessagesPerConnection ?? 100),
      idleTimeout: config.idleTimeout ?? 30_000,
    };
    this.queueLimit = positive('queueLimit', config.queueLimit ?? 2 * this.maxConnections * this.limits.maxInFlight);
    if (config.rateLimit) this.window = new SlidingWindow(config.rateLimit, this.scheduler);
    this.throttle = new Throttle(this.maxConnections);
    this.throttleRules = config.throttle === false ? [] : [...THROTTLE_RULES, ...(config.throttle?.rules ?? [])];
    this.monitor = new PoolMonitor(this.scheduler, () => this.load(), config.logger);
    const { logger: _poolLogger, ...sessionConfig } = config;
    this.sessionConfig = sessionConfig;
    this.stats$ = this.monitor.stats$;
    this.events$ = this.monitor.events$;
  }

  /**
   * Sends one message on a pooled connection: the same events as the
   * session-level `sendmail$`, and the same errors (one attempt, no retry).
   *
   * ```
   * pool.sendmail$(…):  ----(queued)----r--r--p--(sent|)
   * ```
   *
   * Cold: subscribing queues the message. Subscriptions beyond the room on the
   * connections wait in order with their bodies unread; their number is the
   * caller's `mergeMap` concurrency (`sendAll` keeps it to `queueLimit`).
   * A message whose connection dies before it wrote a byte (another's
   * cancellation destroyed it, the server closed it) goes back to the head of
   * the queue for another connection: only the messages on the wire fail.
   * Unsubscribing cancels it: taken off
   * the queue, or the transaction aborted as the session does (RSET before the
   * body; the connection destroyed during it). After `close`, errors with
   * `SMTPServerDisconnected`. A "slow down" reply errors it as any refusal
   * does; the pool still slows down (only `send$` requeues).
   */
  sendmail$(
    from: string,
    to: string | readonly (string | Recipient)[],
    body: Body,
    mailOptions?: MailOptions,
    rcptOptions?: RcptOptions,
  ): Observable<SendEvent> {
    return this.transaction$((session) => sendmail$(session, from, to, body, mailOptions, rcptOptions), true);
  }

  /** One try of `message` to `to`, with a fresh body; `send$` counts its outcome itself. */
  private attempt$(message: PoolMessage, to: PoolMessage['to']): Observable<SendEvent> {
    const { from, body, mailOptions, rcptOptions, beforeEnd } = message;
    const fresh = typeof body === 'function' ? body() : body;
    const hooks = beforeEnd ? { beforeEnd } : {};
    const run$ = this.transaction$(
      (session) => sendmail$(session, from, to, fresh, mailOptions, rcptOptions, hooks),
      false,
    );
    // A body made for this attempt and never read (its recipients refused, its connection lost, a
    // "slow down") is closed with it: a stream left open would hold its file until the process ends.
    return fresh === body ? run$ : run$.pipe(finalize(() => destroyBody(fresh)));
  }

  /** One transaction; `counted`: its end is the message's outcome in `stats$`. */
  private transaction$(run: (session: Session) => Observable<SendEvent>, counted: boolean): Observable<SendEvent> {
    return new Observable<SendEvent>((subscriber) => {
      if (this.state !== 'open') {
        subscriber.error(new SMTPPoolClosedError(`The pool is ${this.state === 'closing' ? 'closing' : 'destroyed'}`));
        return undefined;
      }
      const job = new Job(subscriber, run, (j, err) => this.ended(j, err, counted));
      this.queue.push(job);
      this.dispatch();
      return () => this.cancel(job);
    });
  }

  /**
   * Sends one message and emits its one `SendOutcome`; never errors. Transient
   * failures are retried per `retry`; refusals and "possibly delivered" never.
   * A "slow down" (see `throttle`) puts it back in the queue without counting an
   * attempt, until `throttle.budgetMs` has passed since it was subscribed.
   *
   * ```
   * pool.send$(m):  -------(o|)      o: sent | refused | failed | possibly-delivered
   * ```
   */
  send$<Id>(message: PoolMessage<Id>): Observable<SendOutcome<Id>> {
    // A state machine rather than an operator chain (retry, mergeMap, catchError…): this runs once per
    // message on `sendAll$`'s path, where eight operators cost ~50 µs a message (bench/README.md, 11-30).
    return new Observable<SendOutcome<Id>>((subscriber) => {
      let attempts = 0;
      const deadline = this.scheduler.now() + ((this.config.throttle || undefined)?.budgetMs ?? THROTTLE_BUDGET_MS);
      /** The last "slow down": set, the next attempt must start before the deadline or end with it. */
      let throttledBy: unknown;
      let throttles = 0;
      /** Streams still to end (an attempt or its wait, a recipients' follow-up): at 0 the outcome is out. */
      let running = 0;
      let over = false;
      const emit = (outcome: SendOutcome<Id>): void => {
        this.monitor.count(outcome.status);
        subscriber.next(outcome);
      };
      const fail = (error: unknown): void => {
        if (over) return;
        over = true;
        emit({ status: classifyFailure(error).status, message, error, attempts });
        subscriber.complete();
      };
      const ended = (): void => {
        if (--running > 0 || over) return;
        over = true;
        subscriber.complete();
      };
      const sent = ({ reply, refused }: SentEvent): void => {
        const outcome: SentOutcome<Id> = { status: 'sent', message, reply, refused, deferred: {}, attempts };
        const settled = this.settledRecipients(outcome, attempts);
        if (settled) return emit(settled);
        running++;
        subscriber.add(
          this.retryRecipients$(outcome, attempts).subscribe({ next: emit, error: fail, complete: ended }),
        );
      };
      const attempt = (): void => {
        attempts++;
        let sent$: Observable<SendEvent>;
        try {
          sent$ = this.attempt$(message, message.to);
        } catch (err) {
          // A body factory that throws (its file gone, say) fails this attempt like any other error.
          retry(err);
          return;
        }
        if (throttledBy !== undefined) {
          const err = throttledBy;
          sent$ = sent$.pipe(
            timeout({
              first: Math.max(0, deadline - this.scheduler.now()),
              with: () => throwError(() => err),
              scheduler: this.scheduler,
            }),
          );
        }
        // A throwing onEvent fails the attempt, as an error of the transaction would.
        if (message.onEvent) sent$ = sent$.pipe(tap((event) => message.onEvent?.(event)));
        running++;
        subscriber.add(
          sent$.subscribe({
            next: (event) => {
              if (isSent(event)) sent(event);
            },
            error: (err: unknown) => {
              running--;
              retry(err);
            },
            complete: ended,
          }),
        );
      };
      const retry = (err: unknown): void => {
        let wait$: Observable<unknown>;
        if (!this.isThrottle(err) || this.scheduler.now() >= deadline || this.state !== 'open') {
          wait$ = this.retryAfter$(err, attempts);
        } else {
          // Back-pressure, not a failure: the attempt does not count. The message waits a little
          // longer each time, so one greylisted message does not loop while the pace stays up.
          attempts--;
          throttledBy = err;
          const wait = Math.min(
            THROTTLE_REQUEUE_MS * 2 ** throttles++,
            THROTTLE_REQUEUE_MAX_MS,
            deadline - this.scheduler.now(),
          );
          wait$ = race(timer(wait, this.scheduler), concat(this.stopping, of(0)));
        }
        running++;
        let fired = false;
        subscriber.add(
          wait$.pipe(take(1)).subscribe({
            next: () => {
              fired = true;
              attempt();
            },
            error: (e: unknown) => {
              running--;
              fail(e);
            },
            complete: () => {
              // A wait that ends without a signal ends the message without an outcome, as RxJS's retry did.
              if (fired) running--;
              else ended();
            },
          }),
        );
      };
      attempt();
    });
  }

  /** The outcome as it stands when no follow-up for refused recipients is due; undefined when one is. */
  private settledRecipients<Id>(outcome: SentOutcome<Id>, attempts: number): SentOutcome<Id> | undefined {
    const policy = this.config.retry;
    const retried = transientRefusals(outcome.refused);
    if (retried.length === 0) return outcome;
    if (!policy || !this.config.retryRecipients || attempts >= policy.attempts || this.state !== 'open') {
      return { ...outcome, deferred: refusalsOf(outcome.refused, retried) };
    }
    return undefined;
  }
  /**
   * The recipients of a sent message refused with a 4xx, tried again alone in a follow-up
   * transaction under `retry` (attempt `attempts` + 1 on), until they take it or the tries
   * run out; those still refused with a 4xx then end in `deferred`.
   */
  private retryRecipients$<Id>(outcome: SentOutcome<Id>, attempts: number): Observable<SendOutcome<Id>> {
    const settled = this.settledRecipients(outcome, attempts);
    if (settled) return of(settled);
    const policy = this.config.retry;
    if (!policy) return of(outcome); // settledRecipients returns one when there is no policy
    const retried = transientRefusals(outcome.refused);
    const { to } = outcome.message;
    const recipients = (typeof to === 'string' ? [to] : to).filter((r) =>
      retried.includes(typeof r === 'string' ? r : r.address),
    );
    // A close ends the wait at once: the follow-up then fails with the pool, and the recipients stay deferred.
    return race(timer(backoff(policy, attempts), this.scheduler), concat(this.stopping, of(0))).pipe(
      take(1),
      mergeMap(() => this.attempt$(outcome.message, recipients)),
      filter(isSent),
      map(({ refused }) => refused),
      catchError((err: unknown) => {
        // RFC 5321 §4.5.3.2: lost after its body, the follow-up may have been delivered: never sent again.
        if (classifyFailure(err).status === 'possibly-delivered') throw err;
        return of(refusalsAfter(err, retried, outcome.refused));
      }),
      mergeMap((now) =>
        this.retryRecipients$({ ...outcome, refused: mergeRefusals(outcome.refused, retried, now) }, attempts + 1),
      ),
      // Those recipients stay refused with their last 4xx, and are not `deferred`: resending them might duplicate it.
      catchError(() => of(outcome)),
    );
  }

  /** The state `stats$` samples, now. */
  get stats(): PoolStats {
    return this.monitor.snapshot();
  }

  private load(): { connections: number; queued: number; running: number; throttleLevel: number } {
    let running = 0;
    for (const connection of this.connections) running += connection.load;
    return {
      connections: this.connections.size,
      queued: this.queue.length,
      running,
      throttleLevel: this.throttle.level,
    };
  }

  /**
   * Closes gracefully: takes no new message, lets the queued and running ones
   * finish, then says QUIT on every connection. Completes once every socket is closed.
   * Messages waiting for a retry end as `failed`.
   */
  close$(): Observable<void> {
    return defer(() => {
      if (this.state === 'open') {
        this.state = 'closing';
        this.stopping.complete();
      }
      this.dispatch();
      return this.drained.asObservable();
    });
  }

  /** `close$` as a Promise. */
  close(): Promise<void> {
    return lastValueFrom(this.close$(), { defaultValue: undefined });
  }

  /**
   * Closes at once: queued and running transactions fail with `err` (a
   * transaction whose body was complete fails as possibly delivered), sockets are destroyed.
   */
  destroy(err: unknown = new SMTPPoolClosedError('The pool was destroyed')): void {
    if (this.state === 'destroyed') return;
    this.state = 'destroyed';
    this.stopping.complete();
    this.wakeUp?.timer.unsubscribe();
    this.relaxTimer?.unsubscribe();
    // Connections first: the jobs waiting on them come back to the queue, and fail with it.
    for (const connection of [...this.connections]) connection.destroy(err);
    this.connections.clear();
    for (const job of this.queue.splice(0)) job.fail(err);
    this.settleDrained();
  }

  // ---- scheduling ----

  /** Runs `step` until nothing changes; re-entrant calls (from a job's end, say) just ask for another round. */
  private dispatch(): void {
    this.again = true;
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      while (this.again) {
        this.again = false;
        this.step();
      }
    } finally {
      this.dispatching = false;
    }
    this.monitor.touch();
  }

  private step(): void {
    if (this.state === 'destroyed') return;
    while (this.queue.length > 0) {
      const connection = this.leastLoaded();
      if (!connection) break;
      // The limit applies when a transaction starts, not when it was queued: no burst after a wait.
      const now = this.scheduler.now();
      const wait = Math.max(this.window?.wait() ?? 0, this.throttle.wait(now));
      if (wait > 0) {
        this.wakeAfter(wait);
        break;
      }
      this.window?.take();
      this.throttle.take(now);
      this.monitor.started();
      const job = this.queue.shift() as Job;
      job.epoch = this.throttle.epoch;
      connection.run(job);
    }
    this.openAsNeeded();
    const closing = this.state === 'closing' && this.queue.length === 0;
    for (const connection of this.connections) connection.rest(closing);
    this.settleDrained();
  }

  private leastLoaded(): PooledConnection | undefined {
    let best: PooledConnection | undefined;
    for (const connection of this.connections) {
      if (connection.free > 0 && (!best || connection.load < best.load)) best = connection;
    }
    return best;
  }

  /** Opens connections while the queue is longer than the room in those open or opening. */
  private openAsNeeded(): void {
    if (this.queue.length === 0) return;
    let room = 0;
    for (const connection of this.connections) room += connection.connecting ? 1 : connection.free;
    const now = this.scheduler.now();
    if (now < this.reopenAt) {
      if (this.queue.length > room) this.wakeAfter(this.reopenAt - now);
      return;
    }
    while (
      this.queue.length > room &&
      this.connections.size < Math.min(this.maxConnections, this.throttle.connections)
    ) {
      const id = ++this.connectionIds;
      const epoch = this.throttle.epoch;
      const connection = new PooledConnection(this.sessionConfig, this.limits, this.scheduler, {
        available: () => this.dispatch(),
        opened: () => {
          this.openFailures = 0;
          this.monitor.emit({ type: 'connection-opened', connection: id });
        },
        handBack: (jobs) => this.handBack(jobs),
        gone: (c, err) => this.gone(c, id, epoch, err),
      });
      this.connections.add(connection);
      room++;
      connection.open();
    }
  }

  /** A connection closed; `err` is set when it failed before it ran anything. */
  private gone(connection: PooledConnection, id: number, epoch: number, err?: unknown): void {
    if (!this.connections.delete(connection)) return;
    this.monitor.emit(
      err === undefined
        ? { type: 'connection-closed', connection: id }
        : { type: 'connection-failed', connection: id, error: err },
    );
    // "Too many connections" while others serve the queue is back-pressure, answered by the lower
    // target: no backoff, and no count towards failing the queue.
    if (err !== undefined && !(this.signal(err, epoch) && this.connections.size > 0)) this.openFailed(err);
    this.dispatch();
  }

  /** A job ended: counted when it is the message's outcome, and heard for "slow down". */
  private ended(job: Job, err: unknown, counted: boolean): void {
    if (counted) this.monitor.count(err === undefined ? 'sent' : classifyFailure(err).status);
    this.throttle.observe(err !== undefined && throttleStage(err, this.throttleRules) === 'transaction');
    if (err !== undefined) this.signal(err, job.epoch);
  }

  private isThrottle(err: unknown): boolean {
    return throttleStage(err, this.throttleRules) !== undefined;
  }

  /**
   * AIMD (see `Throttle`): a "slow down" halves the limit it concerns, and restarts the quiet period.
   * @return whether `err` was a "slow down".
   */
  private signal(err: unknown, epoch: number): boolean {
    const stage = throttleStage(err, this.throttleRules);
    if (!stage) return false;
    if (!this.throttle.decrease(stage, epoch, this.monitor.ratePerSec)) return true;
    const { level, connections: connectionTarget, rate } = this.throttle;
    this.monitor.emit({ type: 'throttled', level, connectionTarget, ratePerSec: rate, reply: throttleReply(err) });
    this.relaxAfterQuiet();
    return true;
  }

  private relaxAfterQuiet(): void {
    this.relaxTimer?.unsubscribe();
    const quietMs = (this.config.throttle || undefined)?.quietMs ?? THROTTLE_QUIET_MS;
    this.relaxTimer = this.scheduler.schedule(() => {
      this.relaxTimer = undefined;
      if (this.throttle.increase(this.monitor.ratePerSec)) this.monitor.emit({ type: 'released' });
      else {
        this.monitor.touch();
        this.relaxAfterQuiet();
      }
      this.dispatch();
    }, quietMs);
  }

  /**
   * The server refuses connections now (too many, a restart, a 421): new ones
   * wait `connectRetry`'s backoff, and the queue waits for them. It fails with
   * the error only when no other connection is left to take it and the refusal
   * is permanent or the run of failures has used up `connectRetry.attempts`.
   */
  private openFailed(err: unknown): void {
    this.openFailures++;
    const hopeless = !classifyFailure(err).transient || this.openFailures >= this.connectRetry.attempts;
    if (hopeless && this.connections.size === 0) {
      // Spent: the next message gets a fresh run of attempts, at once.
      this.openFailures = 0;
      this.reopenAt = -Infinity;
      for (const job of this.queue.splice(0)) job.fail(err);
      return;
    }
    this.reopenAt = this.scheduler.now() + backoff(this.connectRetry, this.openFailures);
  }

  /** Jobs a dying connection never started: first in line again, since they were queued before the rest. */
  private handBack(jobs: readonly Job[]): void {
    for (const job of jobs) job.requeue();
    this.queue.unshift(...jobs);
    this.dispatch();
  }

  private cancel(job: Job): void {
    // The teardown after an outcome: the pool already took note when the job settled.
    if (job.done) return;
    if (job.queued) this.queue.splice(this.queue.indexOf(job), 1);
    else job.cancel();
    this.dispatch();
  }

  /** Dispatches again after `ms` (the rate limit or a reopen delay), keeping the earliest wake-up. */
  private wakeAfter(ms: number): void {
    const at = this.scheduler.now() + ms;
    if (this.wakeUp && this.wakeUp.at <= at && !this.wakeUp.timer.closed) return;
    this.wakeUp?.timer.unsubscribe();
    this.wakeUp = {
      at,
      timer: this.scheduler.schedule(() => {
        this.wakeUp = undefined;
        this.dispatch();
      }, ms),
    };
  }

  /** The wait before retry number `retryCount` (1 for the first), or the error when there is none. */
  private retryAfter$(err: unknown, retryCount: number): Observable<number> {
    const policy = this.config.retry;
    const giveUp$ = throwError(() => err);
    if (!policy || retryCount >= policy.attempts || !classifyFailure(err).transient || this.state !== 'open')
      return giveUp$;
    // A close ends the wait at once: the message fails with the error it had.
    return race(timer(backoff(policy, retryCount), this.scheduler), concat(this.stopping, giveUp$));
  }

  private settleDrained(): void {
    if (this.state === 'open' || this.queue.length > 0 || this.connections.size > 0) return;
    this.wakeUp?.timer.unsubscribe();
    this.relaxTimer?.unsubscribe();
    this.drained.next();
    this.drained.complete();
  }
}

type SentOutcome<Id> = Extract<SendOutcome<Id>, { status: 'sent' }>;
type SentEvent = Extract<SendEvent, { type: 'sent' }>;

function isSent(event: SendEvent): event is SentEvent {
  return event.type === 'sent';
}

/** The wait before retry `n` (1 for the first): `backoffMs`, doubling, at most `maxBackoffMs`. */
function backoff(policy: RetryPolicy, n: number): number {
  return Math.min(policy.backoffMs * 2 ** (n - 1), policy.maxBackoffMs ?? Infinity);
}

function positive(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0))
    throw new SMTPInvalidArgumentError(`${name} must be a positive integer, got ${value}`);
  return value;
}
