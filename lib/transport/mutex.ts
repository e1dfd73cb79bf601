import { Observable, Subscription } from 'rxjs';

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
   * @param work builds the work; call `release` once the lock is no longer needed.
   * @return the work's notifications, starting once the lock is acquired.
   */
  run$<T>(work: (release: () => void) => Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      let released = false;
      let inner: Subscription | undefined;
      const release = (): void => {
        if (released) return;
        released = true;
        if (started) this.handOver();
      };
      let started = false;
      const start = (): void => {
        started = true;
        if (subscriber.closed) return release();
        inner = work(release).subscribe(subscriber);
        inner.add(release);
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
        if (started) release();
      };
    });
  }

  /** Whether a holder has the lock now. */
  get locked(): boolean {
    return this.held;
  }

  private handOver(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.held = false;
  }
}
