import { Observable, Subscription } from 'rxjs';

/** The holder's handle on the lock. */
export interface Lock {
  /** Lets the next holder in now (idempotent). */
  release(): void;
  /** Keeps the lock past the end of the work, until `release()` is called (cleanup that must finish first). */
  keep(): void;
}

/**
 * A FIFO lock for Observables: `run$` subscribes to its work once every earlier
 * holder has released the lock. The holder releases it early with the callback
 * it is given (a transaction does so once its last byte is written, so the next
 * one may go out while its reply is still owed: RFC 2920 §3.1), or by ending.
 */
export class Mutex {
  private held = false;
  private readonly waiters: Array<() => void> = [];

  /**
   * @param work builds the work; call `lock.release()` once the lock is no longer needed.
   * @return the work's notifications, starting once the lock is acquired.
   */
  run$<T>(work: (lock: Lock) => Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      let released = false;
      let kept = false;
      let inner: Subscription | undefined;
      const release = (): void => {
        if (released) return;
        released = true;
        if (started) this.handOver();
      };
      const endOfWork = (): void => {
        if (!kept) release();
      };
      const lock: Lock = { release, keep: () => (kept = true) };
      let started = false;
      const start = (): void => {
        started = true;
        if (subscriber.closed) return release();
        inner = work(lock).subscribe(subscriber);
        inner.add(endOfWork);
      };
      if (this.held) this.waiters.push(start);
      else {
        this.held = true;
        start();
      }
      return () => {
        const waiting = this.waiters.indexOf(start);
        if (waiting >= 0) this.waiters.splice(waiting, 1);
        inner?.unsubscribe();
        if (started) endOfWork();
      };
    });
  }

  private handOver(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.held = false;
  }
}
