import { SchedulerLike, Subscription } from 'rxjs';
import { SMTPServerDisconnected } from '../errors';
import { SessionConfig, session$ } from '../session/open-session';
import { quit$ } from '../session/quit';
import { Session, hasExtension } from '../session/session';
import { Job } from './job';
import { leavesConnectionClean } from './outcome';

/** The per-connection limits of a pool. */
export interface ConnectionLimits {
  /** Transactions stacked at once when the server offers PIPELINING. */
  readonly maxInFlight: number;
  /** Transactions before the connection is retired with QUIT. */
  readonly maxMessages: number;
  /** ms without work before QUIT; not finite: never. */
  readonly idleTimeout: number;
}

/** What a pooled connection tells its pool. */
export interface ConnectionEvents {
  /** It can take work: it became ready, or a transaction ended. */
  readonly available: () => void;
  /** It is open and ready for transactions: the server takes connections. */
  readonly opened: () => void;
  /** Jobs it was given and never started (it died first): they wrote nothing, so they can go elsewhere. */
  readonly handBack: (jobs: readonly Job[]) => void;
  /** It is gone. `err` is set when it failed before it ran anything (the server may refuse connections). */
  readonly gone: (connection: PooledConnection, err?: unknown) => void;
}

type State = 'connecting' | 'ready' | 'retiring' | 'gone';

/**
 * One connection of a pool: a `session$` subscription, the transactions
 * running on it, its message count and its idle timer.
 *
 * The jobs it is given wait here, not in the connection's write channel: one at a
 * time is started when the lock comes free, so a job that never got the lock
 * has written nothing, and goes back to the pool when the connection dies
 * (another job's cancellation destroyed it, the server closed it).
 */
export class PooledConnection {
  private state: State = 'connecting';
  private session?: Session;
  private capacity = 1;
  /** Jobs given to it and not ended: waiting for the connection's write channel or running. */
  private running = 0;
  private started = 0;
  /** Jobs waiting for the connection's write channel, in order. */
  private readonly waiting: Job[] = [];
  /** Cancels the wait for the write channel on behalf of `waiting[0]`; set while that wait is on. */
  private gate: (() => void) | undefined;
  private idleTimer: Subscription | undefined;
  /** When the last transaction ended, while none runs; undefined while busy. */
  private idleSince: number | undefined;
  private quitting?: Subscription;
  private subscription?: Subscription;

  constructor(
    private readonly config: SessionConfig,
    private readonly limits: ConnectionLimits,
    private readonly scheduler: SchedulerLike,
    private readonly events: ConnectionEvents,
  ) {}

  /** Connects: greeting, EHLO, STARTTLS and the configured steps. */
  open(): void {
    this.subscription = session$(this.config).subscribe({
      next: (session) => this.ready(session),
      error: (err: unknown) => this.lost(err),
      complete: () => this.lost(),
    });
  }

  get connecting(): boolean {
    return this.state === 'connecting';
  }

  /** Transactions it can take now. */
  get free(): number {
    const usable = this.state === 'ready' && this.session?.connection.open === true;
    return usable && this.started < this.limits.maxMessages ? this.capacity - this.running : 0;
  }

  /** Transactions given to it and not ended: running, or waiting for the connection's write channel. */
  get load(): number {
    return this.running;
  }

  run(job: Job): void {
    this.running++;
    this.started++;
    // The idle timer is left running: it checks `idleSince` when it fires (no timer churn per message).
    this.idleSince = undefined;
    this.waiting.push(job);
    job.assign(() => this.withdraw(job));
    this.admitNext();
  }

  /**
   * Waits for the connection's write channel for the first waiting job, and starts it while
   * holding the lock: its transaction queues for the lock right behind, so it
   * writes next, and transactions still stack (each writes as soon as the one
   * before released the lock after its last byte, RFC 2920 §3.1).
   */
  private admitNext(): void {
    if (this.gate || this.waiting.length === 0) return;
    const connection = (this.session as Session).connection;
    let granted = false;
    const cancel = connection.turn((turn) => {
      granted = true;
      this.gate = undefined;
      if (!connection.open) this.handBackWaiting();
      else {
        // The first job now, whichever it is: the one the wait began for may have been withdrawn.
        const job = this.waiting.shift();
        job?.start(this.session as Session, (err) => this.settle(err));
        this.admitNext();
      }
      turn.release();
    });
    // The callback above sets `granted` when the turn is free at once (before turn() returns).
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (!granted) this.gate = cancel;
  }

  /** A waiting job was cancelled: it never started, so it does not count against `maxMessages`. */
  private withdraw(job: Job): void {
    const at = this.waiting.indexOf(job);
    if (at < 0) return;
    this.waiting.splice(at, 1);
    this.running--;
    this.started--;
    this.events.available();
  }

  /** Gives every waiting job back to the pool (the connection is dead or going). */
  private handBackWaiting(): void {
    this.gate?.();
    this.gate = undefined;
    const jobs = this.waiting.splice(0);
    if (jobs.length === 0) return;
    this.running -= jobs.length;
    this.started -= jobs.length;
    this.events.handBack(jobs);
  }

  /**
   * Called when the pool has no work for it: QUIT when it is spent or the pool
   * is closing, else start the idle timer.
   */
  rest(closing: boolean): void {
    if (this.state !== 'ready' || this.running > 0) return;
    if (closing || this.started >= this.limits.maxMessages) return this.retire();
    this.idleSince ??= this.scheduler.now();
    if (!this.idleTimer && Number.isFinite(this.limits.idleTimeout)) this.armIdleTimer(this.limits.idleTimeout);
  }

  /** QUIT once `idleTimeout` has passed since the connection last had work; else wait for the rest. */
  private armIdleTimer(ms: number): void {
    this.idleTimer = this.scheduler.schedule(() => {
      this.idleTimer = undefined;
      if (this.idleSince === undefined) return;
      const left = this.idleSince + this.limits.idleTimeout - this.scheduler.now();
      if (left > 0) this.armIdleTimer(left);
      else this.retire();
    }, ms);
  }

  /** Closes at once; transactions on it fail with `err`. */
  destroy(err: unknown): void {
    // Jobs that wrote nothing go back to the pool, which decides their fate (a destroyed pool fails them).
    this.handBackWaiting();
    this.session?.connection.destroy(err);
    this.subscription?.unsubscribe();
    this.lost();
  }

  private ready(session: Session): void {
    this.session = session;
    this.state = 'ready';
    // RFC 2920: without PIPELINING every command waits for its reply, so nothing can stack.
    this.capacity = hasExtension(session, 'pipelining') ? this.limits.maxInFlight : 1;
    this.events.opened();
    this.events.available();
  }

  private settle(err?: unknown): void {
    this.running--;
    // A timeout, a lost connection, a body that failed: the server's state is unknown; never reuse.
    if (err !== undefined && !leavesConnectionClean(err) && this.session?.connection.open) {
      this.session.connection.destroy(new SMTPServerDisconnected('Connection discarded after a failed transaction'));
    }
    this.events.available();
  }

  /** QUIT (RFC 5321 §4.1.1.10); the connection is gone once the server closed. */
  private retire(): void {
    if (this.state !== 'ready') return;
    this.state = 'retiring';
    this.idleTimer?.unsubscribe();
    this.quitting = quit$(this.session as Session).subscribe({ error: () => undefined });
  }

  private lost(err?: unknown): void {
    if (this.state === 'gone') return;
    const refused = this.started === 0 && this.state !== 'retiring';
    this.state = 'gone';
    this.idleTimer?.unsubscribe();
    this.quitting?.unsubscribe();
    this.handBackWaiting();
    this.events.gone(this, refused ? (err ?? new SMTPServerDisconnected('Connection closed before use')) : undefined);
  }
}
