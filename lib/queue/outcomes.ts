import { ConnectionOptions, IRedisClient, Queue, QueueEvents } from 'bullmq';
import { Observable, Subscriber } from 'rxjs';
import { JobData, envelopeOf } from './job-data';
import type { MailQueue } from './mail-queue';
import { MARKER_FIELD } from './marker';
import { QueueOutcome, outcomeFromReason } from './outcome';
import type { JobProgress } from './progress';

/** Where a queue lives: its name, Redis, and its key prefix. */
export interface QueueRef {
  readonly name: string;
  readonly connection: ConnectionOptions;
  readonly prefix?: string;
}

/** Where `outcomes$` starts reading the queue's events. */
export interface OutcomesOptions {
  /**
   * Where to start: `'now'` (default), what happens after the subscription; `'start'`, every
   * event still in the queue's event stream (BullMQ keeps its last `eventsMaxLen` events, 10 000
   * by default), then the new ones; or an event id from an earlier run.
   */
  // The two keywords stay in the type for the reader (and the editor's completion).
  // eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents
  readonly since?: 'now' | 'start' | string;
}

/** A job's progress as `progress$` emits it. */
export interface QueueProgress extends JobProgress {
  readonly jobId: string;
}

/**
 * The final outcome of every job of a queue, from whichever machine ended it: BullMQ's
 * `completed` and `failed` events (QueueEvents), read on a connection of its own. One per job;
 * a transient failure BullMQ retries is not one (its last attempt's is).
 *
 * ```
 * outcomes$(queue):  ----o---o-o------o---     o: sent | refused | failed | possibly-delivered
 * ```
 *
 * A failed job's outcome travels in its failure reason (see `failureReason`); a job BullMQ failed
 * by itself (one that stalled more than `maxStalledCount` times) is `possibly-delivered` if its
 * final dot was marked, else `failed` (read from the job, unless it was removed as it failed).
 * Outcomes come in the order they are read, not the order the jobs ended: key them by `jobId`.
 *
 * Cold: subscribing connects (from `since`), unsubscribing disconnects. Lost connections are
 * retried (ioredis) and the stream goes on from where it was; it never errors for their sake.
 *
 * @example
 * outcomes$(queue).pipe(filter((o) => o.status === 'possibly-delivered')).subscribe((o) => review(o.jobId));
 * @param queue a `MailQueue`, or where a queue lives.
 * @param options where to start reading.
 * @return one `QueueOutcome` per job that ends.
 */
export function outcomes$<Id extends string = string>(
  queue: MailQueue<Id> | QueueRef,
  options: OutcomesOptions = {},
): Observable<QueueOutcome<Id>> {
  return queueEvents$<QueueOutcome<Id>>(queue, options, (events, subscriber, lookup) => {
    events.on('completed', ({ returnvalue }) => subscriber.next(returnvalue as unknown as QueueOutcome<Id>));
    events.on('failed', ({ jobId, failedReason }) => {
      const outcome = outcomeFromReason<Id>(failedReason);
      if (outcome) return subscriber.next(outcome);
      failedOutcome<Id>(lookup, jobId, failedReason).then(
        (found) => found && subscriber.next(found),
        (err: unknown) => subscriber.error(err),
      );
    });
  });
}

/**
 * Each job's progress as its worker publishes it: the per-recipient results of the attempt under
 * way (`recipient` per RCPT reply, LMTP `delivery`), as they arrive (see `JobProgress`).
 *
 * ```
 * progress$(queue):  --p(a:1,[r1])--p(a:1,[r1,r2])-----p(b:1,[r1])--
 * ```
 *
 * Cold, read like `outcomes$`.
 *
 * @param queue a `MailQueue`, or where a queue lives.
 * @param options where to start reading.
 * @return the progress of every job, tagged with its `jobId`.
 */
export function progress$(queue: MailQueue | QueueRef, options: OutcomesOptions = {}): Observable<QueueProgress> {
  return queueEvents$<QueueProgress>(queue, options, (events, subscriber) => {
    events.on('progress', ({ jobId, data }) => {
      // Progress is whatever JSON a job reported, null included, whatever BullMQ's type says.
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
      if (typeof data === 'object' && data !== null && 'recipients' in data)
        subscriber.next({ jobId, ...(data as unknown as JobProgress) });
    });
  });
}

/** A lookup connection: QueueEvents' own is blocked in XREAD. */
interface Lookup {
  readonly client: IRedisClient;
  readonly toKey: (id: string) => string;
}

/** BullMQ's QueueEvents of a queue from `since`, wired to a subscriber by `wire`; closed on unsubscribe. */
function queueEvents$<T>(
  queue: MailQueue | QueueRef,
  options: OutcomesOptions,
  wire: (events: QueueEvents, subscriber: Subscriber<T>, lookup: Lookup) => void,
): Observable<T> {
  const { name } = queue;
  const { connection, prefix } = 'queue' in queue ? queue.options : queue;
  return new Observable<T>((subscriber) => {
    const base = { connection, ...(prefix !== undefined && { prefix }) };
    const queueClient = new Queue(name, base);
    // Connection errors are retried by ioredis; without a listener BullMQ prints them.
    queueClient.on('error', () => undefined);
    let events: QueueEvents | undefined;
    let closed = false;
    const start = async (): Promise<void> => {
      const client = await queueClient.getBackend().client;
      const since = options.since ?? 'now';
      const lastEventId =
        since === 'start' ? '0-0' : since === 'now' ? await lastEventIdOf(client, queueClient.toKey('events')) : since;
      if (closed) return;
      events = new QueueEvents(name, { ...base, lastEventId });
      events.on('error', () => undefined);
      wire(events, subscriber, { client, toKey: (id) => queueClient.toKey(id) });
    };
    start().catch((err: unknown) => subscriber.error(err));
    return () => {
      closed = true;
      void events?.close().catch(() => undefined);
      void queueClient.close().catch(() => undefined);
    };
  });
}

// KEYS[1] the event stream: its last id, or 0-0 when it is empty. ('$' would miss what comes
// before QueueEvents' first read, and again after each read that found nothing.)
const LAST_EVENT_ID = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]`;
const LAST_EVENT_COMMAND = 'rxSmtpLastEventId';

async function lastEventIdOf(client: IRedisClient, key: string): Promise<string> {
  client.defineCommand(LAST_EVENT_COMMAND, { numberOfKeys: 1, lua: LAST_EVENT_ID });
  return String(await client.runCommand(LAST_EVENT_COMMAND, [key]));
}

/**
 * The outcome of a job BullMQ failed by itself (stalled too often, …): `possibly-delivered` when
 * its final dot was marked, else `failed`. Undefined when the job is gone (`removeOnFail`).
 */
async function failedOutcome<Id extends string>(
  lookup: Lookup,
  jobId: string,
  failedReason: string,
): Promise<QueueOutcome<Id> | undefined> {
  const [data, marker, attemptsMade] = await lookup.client.hmget(lookup.toKey(jobId), 'data', MARKER_FIELD, 'atm');
  if (!data) return undefined;
  return {
    status: marker ? 'possibly-delivered' : 'failed',
    jobId,
    message: envelopeOf<Id>(JSON.parse(data) as JobData),
    error: { code: marker ? 'ERR_SMTP_POSSIBLY_DELIVERED' : 'ERR_SMTP_QUEUE', message: failedReason },
    attempts: Number(attemptsMade ?? 0),
  };
}
