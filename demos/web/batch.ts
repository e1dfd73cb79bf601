import {
  BehaviorSubject,
  Observable,
  ReplaySubject,
  Subject,
  Subscription,
  EMPTY,
  catchError,
  concat,
  defer,
  endWith,
  filter,
  from,
  interval,
  map,
  merge,
  mergeMap,
  of,
  take,
  takeWhile,
  timer,
} from 'rxjs';
import { RetryPolicy, SMTPPool, SendEvent, classifyFailure } from '../../lib';
import { OutcomeEvent, RecipientEvent, StatsEvent, WebEvent } from './events';

/** One message of a demo batch; `id` is its index in the batch. */
export interface DemoMessage {
  readonly id: number;
  readonly from: string;
  readonly to: readonly string[];
  readonly body: string;
}

const NAMES = ['ada', 'grace', 'linus', 'margaret', 'barbara', 'ken', 'radia', 'edsger', 'frances', 'dennis'];

/** Every 9th message goes only to the mailbox the server refuses; every 4th has it among others. */
export function demoMessages(batch: string, size: number): DemoMessage[] {
  return Array.from({ length: size }, (_, id) => {
    const count = 1 + (id % 3);
    const to = Array.from({ length: count }, (_, k) => `${NAMES[(id + k) % NAMES.length] ?? 'someone'}@example.test`);
    if (id % 9 === 8) to.splice(0, to.length, 'nobody@example.test');
    else if (id % 4 === 3) to.push('nobody@example.test');
    const body = `X-Demo-Id: ${batch}/${id}\r\nSubject: Batch ${batch}, message ${id}\r\n\r\nSent by the rx-smtp web demo.\r\n`;
    return { id, from: 'demo@example.test', to, body };
  });
}

/**
 * One batch: sends its messages through the pool and keeps the log of events
 * that a page replays to catch up. Cancelling a message unsubscribes its
 * transaction while its body has not started; after that it ends in its real fate.
 */
export class Batch {
  /** The whole log, replayed to each page that connects. */
  readonly events$ = new ReplaySubject<WebEvent>();
  readonly stats$: BehaviorSubject<StatsEvent>;
  readonly outcomes = new Map<number, OutcomeEvent>();
  readonly messages: readonly DemoMessage[];
  private readonly cancels$ = new Subject<number>();
  /** Messages `mergeMap` has taken from the batch; the others wait in its buffer. */
  private readonly subscribed = new Set<number>();
  /** Messages cancelled before `mergeMap` took them: they end at once, and are skipped when their turn comes. */
  private readonly cancelledEarly = new Set<number>();
  private readonly bodyStarted = new Set<number>();
  private readonly startedAt = Date.now();
  private readonly run: Subscription;

  constructor(
    readonly id: string,
    size: number,
    private readonly pool: SMTPPool,
    private readonly retry: RetryPolicy,
    private readonly rateLimit: number,
  ) {
    this.messages = demoMessages(id, size);
    this.stats$ = new BehaviorSubject(this.stats());
    this.events$.next({
      type: 'batch',
      batch: id,
      rateLimit,
      messages: this.messages.map(({ id, to }) => ({ id, to })),
    });
    // The heart of the demo: one Observable per message, merged as the pool has room, into the log.
    const run$ = from(this.messages).pipe(
      mergeMap((m) => this.message$(m), pool.queueLimit),
      endWith<WebEvent>({ type: 'done', batch: id }),
    );
    const ticks = interval(250).subscribe(() => this.stats$.next(this.stats()));
    this.run = run$.subscribe({
      next: (e) => this.record(e),
      complete: () => {
        ticks.unsubscribe();
        this.stats$.next(this.stats());
        this.events$.complete();
        this.stats$.complete();
      },
    });
  }

  get done(): boolean {
    return this.run.closed;
  }

  /** Cancels one message, or all when `id` is undefined. Unknown or finished ones are ignored. */
  cancel(id?: number): void {
    const ids = id === undefined ? this.messages.map((m) => m.id) : [id];
    for (const one of ids) {
      if (this.outcomes.has(one) || this.bodyStarted.has(one)) continue;
      if (this.subscribed.has(one)) {
        this.cancels$.next(one);
      } else {
        this.cancelledEarly.add(one);
        this.record(cancelled(one));
      }
    }
  }

  private record(e: WebEvent): void {
    if (e.type === 'outcome') this.outcomes.set(e.id, e);
    this.events$.next(e);
  }

  /** The message's events, ending with its one outcome: its fate, or `cancelled` if that comes first. */
  private message$(m: DemoMessage): Observable<WebEvent> {
    return defer(() => {
      if (this.cancelledEarly.has(m.id)) return EMPTY;
      this.subscribed.add(m.id);
      const cancel$ = this.cancels$.pipe(
        filter((c) => c === m.id),
        take(1),
        map(() => cancelled(m.id)),
      );
      return merge(this.deliver$(m, 1), cancel$).pipe(takeWhile((e) => e.type !== 'outcome', true));
    });
  }

  /** Ends the batch at once (the server is closing). */
  stop(): void {
    this.cancel();
    this.run.unsubscribe();
  }

  /**
   * One attempt with `pool.sendmail$`, and the next after a backoff when it fails
   * transiently: the pool's `send$` retries the same way but keeps the per-recipient events to itself.
   */
  private deliver$(m: DemoMessage, attempt: number): Observable<WebEvent> {
    return this.pool.sendmail$(m.from, m.to, m.body).pipe(
      mergeMap((e) => this.fromSendEvent(m.id, attempt, e)),
      catchError((err: unknown) => {
        const { status, transient } = classifyFailure(err);
        // The next attempt starts over: it may be cancelled until its own body starts.
        this.bodyStarted.delete(m.id);
        const reason = describe(err);
        if (!transient || attempt >= this.retry.attempts)
          return of<WebEvent>({ type: 'outcome', id: m.id, status, attempts: attempt, reason });
        const delayMs = this.retry.backoffMs * 2 ** (attempt - 1);
        const retry: WebEvent = { type: 'retry', id: m.id, attempt, delayMs, reason };
        return concat(of(retry), timer(delayMs).pipe(mergeMap(() => this.deliver$(m, attempt + 1))));
      }),
    );
  }

  private fromSendEvent(id: number, attempt: number, e: SendEvent): WebEvent[] {
    switch (e.type) {
      case 'recipient':
        return [
          {
            type: 'recipient',
            id,
            attempt,
            recipient: e.recipient,
            status: rcptStatus(e.accepted, e.reply.code),
            code: e.reply.code,
          },
        ];
      case 'progress':
        // Emitted before the body's bytes are written: from here a cancel would not be the message's real fate.
        this.bodyStarted.add(id);
        return [];
      case 'sent':
        return [{ type: 'outcome', id, status: 'sent', attempts: attempt }];
      default:
        return [];
    }
  }

  private stats(): StatsEvent {
    const seconds = (Date.now() - this.startedAt) / 1000;
    const sent = [...this.outcomes.values()].filter((o) => o.status === 'sent').length;
    return {
      type: 'stats',
      ...this.pool.stats,
      rateLimit: this.rateLimit,
      messagesPerSecond: seconds > 0 ? sent / seconds : 0,
    };
  }
}

function cancelled(id: number): OutcomeEvent {
  return { type: 'outcome', id, status: 'cancelled', attempts: 0 };
}

function rcptStatus(accepted: boolean, code: number): RecipientEvent['status'] {
  if (accepted) return 'accepted';
  return code >= 400 && code < 500 ? 'deferred' : 'refused';
}

function describe(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' ? `${code}: ${message}` : message;
}
