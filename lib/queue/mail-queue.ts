import { ConnectionOptions, JobsOptions, KeepJobs, Queue } from 'bullmq';
import { Observable, defer, from, map, throwError, timeout } from 'rxjs';
import { SMTPInvalidArgumentError } from '../errors';
import type { PoolLogger } from '../pool/monitor';
import type { RetryPolicy } from '../pool/pool';
import { JobData, QueueMessage, toJobData } from './job-data';
import { QueueOutcome } from './outcome';
import { BACKOFF_TYPE } from './backoff';
import { SMTPQueueError } from './marker';

/** How a `MailQueue` reaches Redis, and the retry policy its jobs carry. */
export interface MailQueueOptions {
  /** Redis, as BullMQ takes it: `{ host, port, … }` or an ioredis instance. */
  readonly connection: ConnectionOptions;
  /** The key prefix of the queue in Redis (BullMQ's `prefix`). Default `bull`. */
  readonly prefix?: string;
  /**
   * Tries of a message in all, and the wait before the first retry (doubling, at most
   * `maxBackoffMs`), for transient failures; a refusal or "possibly delivered" is never retried.
   * Default `{ attempts: 3, backoffMs: 30000 }`.
   */
  readonly retry?: RetryPolicy;
  /**
   * Finished jobs kept in Redis (BullMQ's `removeOnComplete`/`removeOnFail`). Default: all. An id
   * is idempotent for as long as its job is kept: once removed, adding it again sends it again.
   */
  readonly removeOnComplete?: KeepJobs | boolean | number;
  readonly removeOnFail?: KeepJobs | boolean | number;
  /** The length of the queue's event stream, which `outcomes$` reads (BullMQ's default 10 000). */
  readonly eventsMaxLen?: number;
  /** Redis connection errors (retried by ioredis) are logged here; by default they are dropped. */
  readonly logger?: PoolLogger;
  /**
   * ms `add$`/`addBulk$` wait for Redis before they error with `SMTPQueueError` (reason `timeout`):
   * ioredis retries a lost connection for ever, and a producer must not hang with it. Default 30 000.
   * A job may still have been queued when the error comes: add it again with the same id.
   */
  readonly timeoutMs?: number;
}

const DEFAULT_RETRY: RetryPolicy = { attempts: 3, backoffMs: 30_000 };
const DEFAULT_TIMEOUT_MS = 30_000;
/** The name of every job: BullMQ wants one; the queue carries mail only. */
const JOB_NAME = 'mail';

/**
 * The producer's side of the queue: messages go into Redis as BullMQ jobs, and any number of
 * workers (`startWorker`), on any number of machines, send them.
 *
 * ```ts
 * const queue = new MailQueue('mail', { connection: { host: 'redis' } });
 * queue.add$({ id: 'invoice-42', from, to, body: { ref: '/spool/invoice-42.eml' } }).subscribe((jobId) => …);
 * ```
 *
 * The constructor connects to Redis in the background (BullMQ); `close()` disconnects.
 */
export class MailQueue<Id extends string = string> {
  /** BullMQ's queue, for what this API does not cover (counts, pausing, cleaning). */
  readonly queue: Queue<JobData, QueueOutcome<Id>>;
  private readonly jobOptions: JobsOptions;
  private readonly timeoutMs: number;
  private readonly maxBackoffMs: number | undefined;

  constructor(
    readonly name: string,
    readonly options: MailQueueOptions,
  ) {
    const retry = options.retry ?? DEFAULT_RETRY;
    checkRetry(retry);
    this.maxBackoffMs = retry.maxBackoffMs;
    this.jobOptions = {
      attempts: retry.attempts,
      backoff: { type: BACKOFF_TYPE, delay: retry.backoffMs },
      ...(options.removeOnComplete !== undefined && { removeOnComplete: options.removeOnComplete }),
      ...(options.removeOnFail !== undefined && { removeOnFail: options.removeOnFail }),
    };
    // Checked before the Queue exists: a Queue that is never closed would keep its connection retrying.
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0 && Number.isFinite(this.timeoutMs))) {
      throw new SMTPInvalidArgumentError(
        `rx-smtp/queue: timeoutMs must be a positive number of ms, got ${this.timeoutMs}`,
      );
    }
    this.queue = new Queue<JobData, QueueOutcome<Id>>(name, {
      connection: options.connection,
      ...(options.prefix !== undefined && { prefix: options.prefix }),
      ...(options.eventsMaxLen !== undefined && { streams: { events: { maxLen: options.eventsMaxLen } } }),
    });
    // Without a listener BullMQ prints each one; a lost connection is retried, and add$ times out.
    this.queue.on('error', (err: Error) =>
      options.logger?.warn({ event: 'queue-error', error: err.message }, 'rx-smtp queue: Redis error'),
    );
  }

  /**
   * Queues one message. The message is checked first (addresses, MAIL and RCPT options, body type, id), so a bad one
   * errors before anything reaches Redis.
   *
   * ```
   * add$(m):  ----(id|)
   * ```
   *
   * Cold: nothing is queued until it is subscribed. Adding an id that is already queued (or kept
   * finished) queues nothing and emits the same id: it is sent once.
   *
   * @param message the message; its `id` becomes the job id.
   * @return the job id.
   */
  add$(message: QueueMessage<Id>): Observable<string> {
    return defer(() => {
      const data = toJobData(message, this.maxBackoffMs);
      return from(
        this.queue.add(JOB_NAME, data, { ...this.jobOptions, ...(data.id !== undefined && { jobId: data.id }) }),
      );
    }).pipe(
      this.deadline('add$'),
      map((job) => job.id as string),
    );
  }

  /**
   * Queues messages in one round trip (BullMQ's `addBulk`), all checked before any is sent.
   * Ids already queued are kept as they were, as with `add$`.
   *
   * @param messages the messages (a few thousand at a time is a good size).
   * @return their job ids, in order.
   */
  addBulk$(messages: readonly QueueMessage<Id>[]): Observable<string[]> {
    return defer(() => {
      const jobs = messages.map((message) => {
        const data = toJobData(message, this.maxBackoffMs);
        return { name: JOB_NAME, data, opts: { ...this.jobOptions, ...(data.id !== undefined && { jobId: data.id }) } };
      });
      return from(this.queue.addBulk(jobs));
    }).pipe(
      this.deadline('addBulk$'),
      map((added) => added.map((job) => job.id as string)),
    );
  }

  /** Errors with `SMTPQueueError` (`timeout`) when Redis does not answer within `timeoutMs`. */
  private deadline<T>(what: string): (source: Observable<T>) => Observable<T> {
    const ms = this.timeoutMs;
    const late = () => new SMTPQueueError('timeout', `rx-smtp/queue: ${what} got no answer from Redis within ${ms} ms`);
    return timeout<T, Observable<never>>({ first: ms, with: () => throwError(late) });
  }

  /** Closes the queue's Redis connections. */
  close(): Promise<void> {
    return this.queue.close();
  }
}

function checkRetry(retry: RetryPolicy): void {
  if (!(Number.isInteger(retry.attempts) && retry.attempts > 0)) {
    throw new SMTPInvalidArgumentError(
      `rx-smtp/queue: retry.attempts must be a positive integer, got ${retry.attempts}`,
    );
  }
  for (const [name, value] of [
    ['backoffMs', retry.backoffMs],
    ['maxBackoffMs', retry.maxBackoffMs ?? 0],
  ] as const) {
    if (!(Number.isFinite(value) && value >= 0))
      throw new SMTPInvalidArgumentError(`rx-smtp/queue: retry.${name} must be a number of ms ≥ 0, got ${value}`);
  }
}
