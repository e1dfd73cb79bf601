import { SchedulerAction, SchedulerLike, Subscription } from 'rxjs';

interface Due {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
  readonly subscription: Subscription;
}

/**
 * A scheduler whose time moves only when the test says so: `advance(ms)` runs
 * every action due by then, in time order, each at its own time.
 */
export class ManualClock implements SchedulerLike {
  private time = 0;
  private seq = 0;
  private due: Due[] = [];

  now(): number {
    return this.time;
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    const subscription = new Subscription(() => (this.due = this.due.filter((d) => d !== entry)));
    const action = Object.assign(subscription, {
      schedule: (next?: T, nextDelay = 0) => this.schedule(work, nextDelay, next),
    }) as unknown as SchedulerAction<T>;
    const entry: Due = { at: this.time + delay, seq: this.seq++, run: () => work.call(action, state), subscription };
    this.due.push(entry);
    return subscription;
  }

  /** Moves time forward by `ms`, running what falls due. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      const next = this.due.filter((d) => d.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.due = this.due.filter((d) => d !== next);
      this.time = next.at;
      next.run();
    }
    this.time = target;
  }

  /** When the earliest action falls due; undefined when none waits. */
  get nextAt(): number | undefined {
    return this.due.length ? Math.min(...this.due.map((d) => d.at)) : undefined;
  }
}
