import {
  Observable,
  SchedulerLike,
  Subject,
  defer,
  distinctUntilChanged,
  finalize,
  map,
  startWith,
  throttleTime,
} from 'rxjs';
import { Reply } from '../wire/reply';
import { FailureStatus } from './outcome';
import { Logger, describeError } from '../transport/logger';

/** Where the pool logs (see `Logger`): connections opened, closed and failed, throttled, released. */
export type PoolLogger = Logger;

/** What happens to the pool's connections and throttle, as `pool.events$` tells it. */
export type PoolEvent =
  | { readonly type: 'connection-opened'; readonly connection: number }
  | { readonly type: 'connection-closed'; readonly connection: number }
  /** It failed before it ran anything (refused, a 421 greeting, a timeout). */
  | { readonly type: 'connection-failed'; readonly connection: number; readonly error: unknown }
  /** The server said "slow down": the pool lowered its connection target or its rate. */
  | {
      readonly type: 'throttled';
      readonly level: number;
      readonly connectionTarget: number;
      readonly ratePerSec?: number | undefined;
      readonly reply?: Reply | undefined;
    }
  /** The throttle recovered to the pool's configured limits. */
  | { readonly type: 'released' };

/** A snapshot of the pool, for progress displays, logs and tests. */
export interface PoolStats {
  /** Connections open or opening. */
  readonly connections: number;
  /** Transactions waiting for a connection (or for the rate limit). */
  readonly queued: number;
  /** Transactions running on a connection. */
  readonly running: number;
  /** Messages that ended so, since the pool was made (for `send$`/`sendAll`, final outcomes, not attempts). */
  readonly sent: number;
  readonly refused: number;
  readonly failed: number;
  readonly possiblyDelivered: number;
  /** Transactions started in the last second. */
  readonly ratePerSec: number;
  /** Decreases since the throttle was last released; 0: not throttled. */
  readonly throttleLevel: number;
}

/** The part of the stats the pool reads off its connections and queue when asked. */
export type PoolLoad = Pick<PoolStats, 'connections' | 'queued' | 'running' | 'throttleLevel'>;

/** How often `stats$` emits at most. */
const STATS_INTERVAL_MS = 100;

/**
 * The pool's counters, its event stream and its logger. Counting is a field
 * increment; `stats$` samples the counters when something changed, at most
 * every 100 ms (with a trailing emission), so the hot path pays nothing per
 * message for its observers.
 */
export class PoolMonitor {
  private readonly counts: Record<FailureStatus | 'sent', number> = {
    sent: 0,
    refused: 0,
    failed: 0,
    'possibly-delivered': 0,
  };
  private readonly starts: RateMeter;
  private readonly events = new Subject<PoolEvent>();
  private readonly changes = new Subject<void>();
  private observers = 0;
  /** A change was announced and no snapshot was taken since: later changes need no announcement. */
  private pending = false;

  /** @see SMTPPool.events$ */
  readonly events$: Observable<PoolEvent> = this.events.asObservable();
  /** @see SMTPPool.stats$ */
  readonly stats$: Observable<PoolStats>;

  constructor(
    scheduler: SchedulerLike,
    private readonly load: () => PoolLoad,
    private readonly logger?: PoolLogger,
  ) {
    this.starts = new RateMeter(scheduler);
    this.stats$ = defer(() => {
      this.observers++;
      return this.changes.pipe(
        throttleTime(STATS_INTERVAL_MS, scheduler, { leading: true, trailing: true }),
        startWith(undefined),
        map(() => this.snapshot()),
        distinctUntilChanged(sameStats),
        finalize(() => this.observers--),
      );
    });
  }

  /** Something the stats show may have changed. */
  touch(): void {
    if (this.observers === 0 || this.pending) return;
    this.pending = true;
    this.changes.next();
  }

  /** A transaction started. */
  started(): void {
    this.starts.tick();
  }

  /** Transactions started in the last second. */
  get ratePerSec(): number {
    return this.starts.perSecond();
  }

  /** A message ended so. */
  count(status: FailureStatus | 'sent'): void {
    this.counts[status]++;
    // Its own announcement: the pool's last one may have been sampled before this count.
    this.touch();
  }

  snapshot(): PoolStats {
    this.pending = false;
    const { sent, refused, failed, 'possibly-delivered': possiblyDelivered } = this.counts;
    return { ...this.load(), sent, refused, failed, possiblyDelivered, ratePerSec: this.starts.perSecond() };
  }

  emit(event: PoolEvent): void {
    this.log(event);
    this.events.next(event);
    this.touch();
  }

  private log(event: PoolEvent): void {
    const logger = this.logger;
    if (!logger) return;
    switch (event.type) {
      case 'connection-opened':
        return logger.info({ event: event.type, connection: event.connection }, 'SMTP pool: connection opened');
      case 'connection-closed':
        return logger.info({ event: event.type, connection: event.connection }, 'SMTP pool: connection closed');
      case 'connection-failed':
        return logger.warn(
          { event: event.type, connection: event.connection, ...describeError(event.error) },
          'SMTP pool: connection failed',
        );
      case 'throttled': {
        const { type, level, connectionTarget, ratePerSec, reply } = event;
        const fields = {
          event: type,
          level,
          connectionTarget,
          ratePerSec,
          smtpCode: reply?.code,
          enhancedStatus: reply?.enhancedStatus,
        };
        return logger.warn(fields, 'SMTP pool: the server asks to slow down');
      }
      case 'released':
        return logger.info({ event: event.type }, 'SMTP pool: throttle released');
    }
  }
}

function sameStats(a: PoolStats, b: PoolStats): boolean {
  return (Object.keys(a) as (keyof PoolStats)[]).every((key) => a[key] === b[key]);
}

/** Counts events in ten 100 ms buckets: the count over the last second costs ten additions, a tick one. */
class RateMeter {
  private readonly counts = new Array<number>(10).fill(0);
  private readonly slots = new Array<number>(10).fill(-Infinity);

  constructor(private readonly clock: Pick<SchedulerLike, 'now'>) {}

  tick(): void {
    const slot = Math.floor(this.clock.now() / 100);
    const i = slot % 10;
    const earlier = this.slots[i] === slot ? (this.counts[i] ?? 0) : 0;
    this.slots[i] = slot;
    this.counts[i] = earlier + 1;
  }

  perSecond(): number {
    const slot = Math.floor(this.clock.now() / 100);
    let sum = 0;
    this.slots.forEach((s, i) => {
      if (s > slot - 10) sum += this.counts[i] ?? 0;
    });
    return sum;
  }
}
