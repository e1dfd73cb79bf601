import { Observable, Subscriber, Subscription, tap } from 'rxjs';
import { SendEvent } from '../session/sendmail';
import { Session } from '../session/session';

/**
 * One `SMTPPool.sendmail$` subscription: waits in the pool's queue, then on a
 * connection for its write channel, then runs its transaction on a session and
 * relays the events to its subscriber. Until it runs it has written nothing,
 * so it can go back to the pool's queue if its connection dies.
 */
export class Job {
  private state: 'queued' | 'assigned' | 'running' | 'done' = 'queued';
  private running?: Subscription;
  private settle: (err?: unknown, outcome?: boolean) => void = () => undefined;
  private withdraw: () => void = () => undefined;
  /** The pool's throttle epoch when it started (see `Throttle`). */
  epoch = 0;

  /**
   * @param ended hears how it ended (an error, or nothing: sent) before the subscriber does;
   * not when it was cancelled.
   */
  constructor(
    private readonly subscriber: Subscriber<SendEvent>,
    private readonly transaction$: (session: Session) => Observable<SendEvent>,
    private readonly ended: (job: Job, err?: unknown) => void,
  ) {}

  /** Whether it still waits in the pool's queue. */
  get queued(): boolean {
    return this.state === 'queued';
  }

  /** Whether it has ended (its outcome was delivered, or it was cancelled). */
  get done(): boolean {
    return this.state === 'done';
  }

  /** Given to a connection, where it waits for the write channel; `withdraw` takes it back if it is cancelled there. */
  assign(withdraw: () => void): void {
    this.state = 'assigned';
    this.withdraw = withdraw;
  }

  /** Back in the pool's queue: its connection died before it wrote a byte. */
  requeue(): void {
    this.state = 'queued';
  }

  /**
   * Runs the transaction. `settle` hears how it ended (an error, or nothing)
   * before the subscriber does, so the pool's books are right when the
   * subscriber reacts (a `mergeMap` subscribing the next message, say).
   */
  start(session: Session, settle: (err?: unknown) => void): void {
    this.state = 'running';
    this.settle = (err, outcome = true) => {
      if (this.state === 'done') return;
      this.state = 'done';
      settle(err);
      if (outcome) this.ended(this, err);
    };
    // Subscribed with the caller's subscriber at the end of the chain, so that a caller leaving
    // during a synchronous event stops the transaction at once (before its body is written).
    this.running = this.transaction$(session)
      .pipe(tap({ error: (err: unknown) => this.settle(err), complete: () => this.settle() }))
      .subscribe(this.subscriber);
  }

  /** Fails it before it started (the pool is destroyed, the server refuses connections). */
  fail(err: unknown): void {
    this.state = 'done';
    this.ended(this, err);
    this.subscriber.error(err);
  }

  /**
   * Stops it when its subscriber leaves: withdrawn from its connection if it
   * waits there; a running transaction is cancelled as the session does it
   * (RSET before the body, the connection destroyed during it).
   */
  cancel(): void {
    if (this.state === 'assigned') {
      this.state = 'done';
      return this.withdraw();
    }
    this.running?.unsubscribe();
    this.settle(undefined, false);
  }
}
