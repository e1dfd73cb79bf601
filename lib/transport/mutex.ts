import { Observable, Subscription } from 'rxjs';

/** The holder's handle on the lock. */
export interface Lock {
  /** Lets the next holder in now (idempotent). */
  readonly release: () => void;
  /** Keeps the lock past the end of the work, until `release()` is called (cleanup that must finish first). */
  readonly keep: () => void;
}

/**
 * A FIFO lock for Observables: `run$` subscribes to its work once every earlier
 * holder has released the lock. The holder releases it early with the callback
 * it is given (a transaction does so once its last byte is written, so the next
 * one may go out while its reply is still owed: RFC 2920 §3.1), or by ending.
 */
export class Mutex {
  private held = false;

  /** Whether someone holds the lock (or waits for it). */
  get busy(): boolean {
    return this.held;
  }
  private readonly waiters: Array<() => void> = [];
  private handingOver = false;
  private handOversDue = 0;

  /**
   * @param work builds the work; call `lock.release()` once the lock is no longer needed.
   * @return the work's notifications, starting once the lock is acquired.
   */
  run$<T>(work: (lock: Lock) => Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      let kept = false;
      let inner: Subscription | undefined;
      let release: (() => void) | undefined;
      const endOfWork = (): void => {
        if (!kept) release?.();
      };
      const cancel = this.acquire((granted) => {
        release = granted;
        if (subscriber.closed) return granted();
        let source: Observable<T>;
        try {
          source = work({ release: granted, keep: () => (kept = true) });
        } catch (err) {
          // Work that throws while being built wrote nothing: the lock goes on, and the error to
          // this subscriber (not to whoever released the lock to it).
          granted();
          subscriber.error(err);
          return;
        }
        inner = source.subscribe(subscriber);
        inner.add(endOfWork);
      });
      return () => {
        cancel();
        inner?.unsubscribe();
        endOfWork();
      };
    });
  }

  /**
   * The callback form of `run$`, for hot paths: calls `onAcquired` once every
   * earlier holder has released the lock (at once when it is free). The holder
   * must call the `release` it is given (idempotent).
   *
   * @return cancels the wait if the lock was not granted yet; does nothing after.
   */
  acquire(onAcquired: (release: () => void) => void): () => void {
    let granted = false;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.handOver();
    };
    const grant = (): void => {
      granted = true;
      onAcquired(release);
    };
    if (this.held) this.waiters.push(grant);
    else {
      this.held = true;
      grant();
    }
    return () => {
      if (granted) return;
      const waiting = this.waiters.indexOf(grant);
      if (waiting >= 0) this.waiters.splice(waiting, 1);
    };
  }

  /**
   * Gives the lock to the next waiter. A holder that releases at once (a transaction failing on
   * a dead connection, say) re-enters here; those hand-overs are counted and done by the outer
   * call's loop, so a long queue does not become a deep stack.
   */
  private handOver(): void {
    this.handOversDue++;
    if (this.handingOver) return;
    this.handingOver = true;
    try {
      while (this.handOversDue > 0) {
        this.handOversDue--;
        const next = this.waiters.shift();
        if (next) next();
        else this.held = false;
      }
    } finally {
      this.handingOver = false;
    }
  }
}
