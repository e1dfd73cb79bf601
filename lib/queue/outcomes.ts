import { ConnectionOptions, IRedisClient, Queue, QueueEvents } from 'bullmq';
import { Observable } from 'rxjs';
import { JobData, envelopeOf } from './job-data';
import { MARKER_FIELD } from './marker';
import type { MailQueue } from './mail-queue';
import { QueueOutcome, outcomeFromReason } from './outcome';

/** Where a queue lives: its name, Redis, and its key prefix. */
export interface QueueRef {
  readonly name: string;
  readonly connection: ConnectionOptions;
  readonly prefix?: string;
}

export interface OutcomesOptions {
  /**
   * Where to start: `'now'` (default), the outcomes of jobs that end after the subscription;
   * `'start'`, every outcome still in the queue's event stream (BullMQ keeps its last
   * `eventsMaxLen` events, 10 000 by default), then the new ones; or an event id from an earlier run.
   */
  readonly since?: 'now' | 'start' | string;
}

// KEYS[1] the event stream: its last id, or 0-0 when it is empty.
const LAST_EVENT_ID = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]`;
const LAST_EVENT_COMMAND = 'rxSmtpLastEventId';

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
 * final dot was marked, else `failed` (read from the job, unless it was removed as it failed). Outcomes come in the order they
 * are read, not the order the jobs ended; a UI keys them by `jobId`.
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
export function outcomes$<Id extends string = string>(queue: MailQueue<Id> | QueueRef, options: OutcomesOptions = {}): Observable<QueueOutcome<Id>> {
  const { name } = queue;
  const { connection, prefix } = 'queue' in queue ? queue.options : queue;
  return new Observable<QueueOutcome<Id>>((subscriber) => {
    const base = { connection, ...(prefix !== undefined && { prefix }) };
    // A connection for lookups: QueueEvents' own is blocked in XREAD.
    const lookup = new Queue(name, base);
    lookup.on('error', () => undefined);
    let events: QueueEvents | undefined;
    let closed = false;
    const start = async (): Promise<void> => {
      const client = await lookup.getBackend().client;
      const since = options.since ?? 'now';
      const lastEventId = since === 'start' ? '0-0' : since === 'now' ? await lastEventIdOf(client, lookup.keys.events) : since;
      if (closed) return;
      events = new QueueEvents(name, { ...base, lastEventId });
      // Connection errors are retried by BullMQ; without a listener Node would throw them.
      events.on('error', () => undefined);
      events.on('completed', ({ returnvalue }) => subscriber.next(returnvalue as unknown as QueueOutcome<Id>));
      events.on('failed', ({ jobId, failedReason }) => {
        const outcome = outcomeFromReason<Id>(failedReason);
        if (outcome) return subscriber.next(outcome);
        failedOutcome<Id>(client, lookup.toKey(jobId), jobId, failedReason).then(
          (outcome) => outcome && subscriber.next(outcome),
          (err: unknown) => subscriber.error(err),
        );
      });
    };
    start().catch((err: unknown) => subscriber.error(err));
    return () => {
      closed = true;
      void events?.close().catch(() => undefined);
      void lookup.close().catch(() => undefined);
    };
  });
}

async function lastEventIdOf(client: IRedisClient, key: string): Promise<string> {
  client.defineCommand(LAST_EVENT_COMMAND, { numberOfKeys: 1, lua: LAST_EVENT_ID });
  return String(await client.runCommand(LAST_EVENT_COMMAND, [key]));
}

/**
 * The outcome of a job BullMQ failed by itself (stalled too often, …): `possibly-delivered` when
 * its final dot was marked, else `failed`. Undefined when the job is gone (`removeOnFail`).
 */
async function failedOutcome<Id extends string>(client: IRedisClient, key: string, jobId: string, failedReason: string): Promise<QueueOutcome<Id> | undefined> {
  const [data, marker, attemptsMade] = await client.hmget(key, 'data', MARKER_FIELD, 'atm');
  if (!data) return undefined;
  return {
    status: marker ? 'possibly-delivered' : 'failed',
    jobId,
    message: envelopeOf<Id>(JSON.parse(data) as JobData),
    error: { code: marker ? 'ERR_SMTP_POSSIBLY_DELIVERED' : 'ERR_SMTP_QUEUE', message: failedReason },
    attempts: Number(attemptsMade ?? 0),
  };
}
