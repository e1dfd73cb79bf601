import { ConnectionOptions, Job, UnrecoverableError, Worker, WorkerOptions } from 'bullmq';
import { backoffStrategy } from './backoff';
import { BehaviorSubject, Observable, Subscription, combineLatest, filter, lastValueFrom, map } from 'rxjs';
import { SMTPInvalidArgumentError, SMTPPossiblyDeliveredError, hasCode } from '../errors';
import type { PoolLogger, PoolStats } from '../pool/monitor';
import { PoolMessage, SendOutcome, classifyFailure } from '../pool/outcome';
import { PoolConfig, SMTPPool } from '../pool/pool';
import type { RateLimit } from '../pool/rate-window';
import { BodyResolver, JobData, envelopeOf, noSpool, spoolDirectory, toPoolMessage } from './job-data';
import { DotMarker, SMTPQueueError } from './marker';
import { QueueOutcome, describeError, failureReason, toQueueOutcome } from './outcome';
import { ProgressPublisher } from './progress';
import { limiterFor } from './rate-limit';

/** BullMQ's lock and stall detection for a worker; see BullMQ's `WorkerOptions`. */
export type WorkerTuning = Pick<
  WorkerOptions,
  'name' | 'lockDuration' | 'stalledInterval' | 'maxStalledCount' | 'drainDelay' | 'removeOnComplete' | 'removeOnFail'
>;

/** What `startWorker` needs: the queue and Redis, the pool to send through, and how to pace and close. */
export interface MailWorkerOptions {
  /** The queue's name, as given to `MailQueue`. */
  readonly queue: string;
  /** Redis, as BullMQ takes it: `{ host, port, … }` or an ioredis instance (with `maxRetriesPerRequest: null`). */
  readonly connection: ConnectionOptions;
  /** The queue's key prefix, as given to `MailQueue`. Default BullMQ's `bull`. */
  readonly prefix?: string;
  /**
   * The pool this worker sends through: its configuration (the worker makes the pool and closes it
   * on `close`), or a pool of yours (left open).
   */
  readonly pool: PoolConfig | SMTPPool;
  /**
   * Jobs this worker holds at once. Default: the pool's capacity (`maxConnections` ×
   * `maxInFlightPerConnection`) for a configuration, `pool.queueLimit` for a pool of yours.
   */
  readonly concurrency?: number;
  /**
   * Starts of transactions allowed queue-wide in any window of `perMs` (BullMQ's limiter, one
   * counter in Redis for every worker: give them all the same). See `limiterFor`.
   */
  readonly rateLimit?: RateLimit;
  /**
   * When the pool is told to slow down (its adaptive throttle), every worker of the queue stops
   * taking jobs for `baseMs` × 2^(level − 1), at most `maxMs` (BullMQ's manual rate limit), so
   * that 20 workers do not each hammer the provider. `false`: only this worker's pool slows down.
   * Default `{ baseMs: 1000, maxMs: 30000 }`.
   */
  readonly throttlePause?: { readonly baseMs: number; readonly maxMs: number } | false;
  /**
   * The directory `{ ref }` bodies are read from: a reference is a regular file relative to it (or
   * an absolute path inside it); one that leads outside, or is not a regular file, is refused, so a
   * job cannot name any file the worker can read (README, "What each promise rests on"). It must exist when the
   * worker starts (`startWorker` throws otherwise); relative, it is taken from the working directory.
   * Without it (and without `resolveBody`) a `{ ref }` body is refused.
   */
  readonly spoolDir?: string;
  /**
   * Turns a body reference (`{ ref }`) into the body, once per attempt, instead of `spoolDir`. The
   * reference is job data: whoever can add jobs chooses it.
   */
  readonly resolveBody?: BodyResolver;
  /**
   * Publish each job's per-recipient results as its BullMQ progress, as they arrive (`progress$`):
   * one Redis write per burst of replies. Default true.
   */
  readonly progress?: boolean;
  /** The deadline of each Redis command of the "final dot" marker, in ms. Default 10 000. */
  readonly redisTimeoutMs?: number;
  /**
   * BullMQ's lock and stall detection. `maxStalledCount` defaults to 10 here (BullMQ: 1): a job
   * whose holder died is handed to another worker, which reads its marker; only a job that kills
   * worker after worker before its end is failed by BullMQ.
   */
  readonly worker?: WorkerTuning;
  /** Worker errors (Redis lost, a lock that could not be renewed) go here. Default: the pool's logger, else dropped. */
  readonly logger?: PoolLogger;
  /**
   * ms `close()` waits for the jobs it holds before it forces BullMQ's worker closed (Redis gone, a
   * job that will not end); the pool is closed either way. Default 60 000.
   */
  readonly closeTimeoutMs?: number;
}

/** A worker's state: its pool's, with the counters of the jobs it ended. */
export interface WorkerStats extends PoolStats {
  /** Jobs this worker ended so: final outcomes (the pool's counters count attempts). */
  readonly sent: number;
  readonly refused: number;
  readonly failed: number;
  readonly possiblyDelivered: number;
  /** Attempts that failed transiently and went back to the queue for a retry. */
  readonly retried: number;
  /** Of `possiblyDelivered`, jobs that came back with the marker set and were not sent again. */
  readonly recovered: number;
}

/** A running worker. */
export interface MailWorker {
  /** The worker's state, when it changes (at most every 100 ms, as the pool's). */
  readonly stats$: Observable<WorkerStats>;
  /** The pool it sends through. */
  readonly pool: SMTPPool;
  /** BullMQ's worker, for what this API does not cover. */
  readonly worker: Worker<JobData, QueueOutcome>;
  /**
   * Closes gracefully: takes no new job, lets the jobs it holds finish (their transactions
   * included), then closes the pool it made (QUIT on every connection).
   */
  close(): Promise<void>;
}

type Counter = Exclude<keyof WorkerStats, keyof PoolStats> | 'sent' | 'refused' | 'failed' | 'possiblyDelivered';
const NO_COUNTS: Record<Counter, number> = {
  sent: 0,
  refused: 0,
  failed: 0,
  possiblyDelivered: 0,
  retried: 0,
  recovered: 0,
};
const COUNTER: Record<SendOutcome['status'], Counter> = {
  sent: 'sent',
  refused: 'refused',
  failed: 'failed',
  'possibly-delivered': 'possiblyDelivered',
};

/** With no rate limit, a limiter that never binds: BullMQ's manual rate limit (the throttle pause) needs one. */
const UNLIMITED = { max: Number.MAX_SAFE_INTEGER, duration: 1000 };

/**
 * Starts a worker: takes jobs of the queue and sends each through its own `SMTPPool`, ending each
 * job with exactly one outcome (see `outcomes$`).
 *
 * - `sent`: the job completes, its outcome as the return value;
 * - `refused` and `possibly-delivered`: the job fails, never retried (`UnrecoverableError`);
 * - `failed` and transient (a 4xx, a connection lost before the end of the message): the job
 *   fails this attempt, and BullMQ retries it after the queue's backoff (`MailQueue`'s `retry`);
 *   its last attempt fails the job.
 *
 * Right before the end of a message is written (DATA's final dot, BDAT LAST) the worker marks the
 * job in Redis, if it still holds the job's lock. A worker killed after that point leaves a marked
 * job; BullMQ hands it to another worker once its lock expires, and that worker ends it
 * `possibly-delivered` without sending it again. A job that comes back unmarked is sent normally.
 *
 * ```ts
 * const worker = startWorker({
 *   queue: 'mail',
 *   connection: { host: 'redis' },
 *   pool: { url: 'smtp://mx:25', maxConnections: 8 },
 * });
 * process.once('SIGTERM', () => worker.close());
 * ```
 *
 * @param options the queue, Redis, the pool, and the knobs above.
 * @return the running worker.
 */
export function startWorker(options: MailWorkerOptions): MailWorker {
  const owned = !(options.pool instanceof SMTPPool);
  const pool = options.pool instanceof SMTPPool ? options.pool : new SMTPPool(options.pool);
  const concurrency =
    options.concurrency ?? (options.pool instanceof SMTPPool ? options.pool.queueLimit : capacityOf(options.pool));
  positive('concurrency', concurrency);
  const logger = options.logger ?? (options.pool instanceof SMTPPool ? undefined : options.pool.logger);
  if (options.resolveBody && options.spoolDir !== undefined)
    throw new SMTPInvalidArgumentError('rx-smtp/queue: give a worker spoolDir or resolveBody, not both');
  const resolveBody =
    options.resolveBody ?? (options.spoolDir !== undefined ? spoolDirectory(options.spoolDir) : noSpool);
  const counts = new BehaviorSubject<Record<Counter, number>>(NO_COUNTS);
  const count = (counter: Counter, recovered = false): void => {
    const now = counts.value;
    counts.next({ ...now, [counter]: now[counter] + 1, recovered: now.recovered + (recovered ? 1 : 0) });
  };

  let marker: Promise<DotMarker> | undefined;
  const worker: Worker<JobData, QueueOutcome> = new Worker<JobData, QueueOutcome>(
    options.queue,
    async (job, token) => {
      marker ??= DotMarker.on(worker.getBackend().client, (id) => worker.toKey(id), options.redisTimeoutMs ?? 10_000);
      return process(job, token ?? '', await marker);
    },
    {
      connection: options.connection,
      ...(options.prefix !== undefined && { prefix: options.prefix }),
      concurrency,
      limiter: options.rateLimit ? limiterFor(options.rateLimit) : UNLIMITED,
      maxStalledCount: 10,
      ...options.worker,
      settings: { backoffStrategy },
    },
  );
  worker.on('error', (err) =>
    logger?.warn({ event: 'worker-error', error: err.message }, 'rx-smtp queue: worker error'),
  );

  /** One job: its marker read if it comes back from a stall, else sent; its outcome recorded. */
  async function process(job: Job<JobData, QueueOutcome>, token: string, dots: DotMarker): Promise<QueueOutcome> {
    const jobId = job.id as string;
    const envelope = envelopeOf<string>(job.data);
    const possiblyDelivered = (why: string, attempts: number, cause?: unknown): QueueOutcome => {
      const error = new SMTPPossiblyDeliveredError(why, { cause });
      return { status: 'possibly-delivered', jobId, message: envelope, error: describeError(error), attempts };
    };
    // BullMQ counts a job's returns from the dead (`stalledCounter`): only those can carry a marker.
    if (job.stalledCounter > 0 && (await dots.present(jobId))) {
      const why =
        `A worker stopped after marking job ${jobId} for its final dot and before recording the server's verdict: ` +
        'it may have been delivered, so it is not sent again';
      return finish(job, token, dots, possiblyDelivered(why, job.attemptsMade + 1), { recovered: true });
    }
    const progress =
      options.progress === false
        ? undefined
        : new ProgressPublisher(job.attemptsMade + 1, (p) => job.updateProgress({ ...p }));
    const message: PoolMessage<string> = {
      ...toPoolMessage(job.data, resolveBody),
      beforeEnd: () => dots.mark(jobId, token),
      ...(progress && { onEvent: progress.onEvent }),
    };
    const sent = await lastValueFrom(pool.send$(message));
    if (sent.status === 'failed' && hasCode(sent.error, 'ERR_SMTP_QUEUE')) {
      const reason = (sent.error as SMTPQueueError).reason;
      // Another worker holds the job now: it decides, and BullMQ will not let this one finish it.
      if (reason === 'lock-lost') throw sent.error;
      if (reason === 'marked') {
        const why =
          `Job ${jobId} was marked by an earlier attempt: ` + 'it may have been delivered, so it is not sent again';
        return finish(job, token, dots, possiblyDelivered(why, job.attemptsMade + sent.attempts, sent.error), {
          recovered: true,
        });
      }
    }
    // Redis did not take the marker: the end was not written, and trying later is safe.
    const transient =
      sent.status === 'failed' && (classifyFailure(sent.error).transient || hasCode(sent.error, 'ERR_SMTP_QUEUE'));
    return finish(job, token, dots, toQueueOutcome(sent, jobId, envelope, job.attemptsMade), { transient });
  }

  /**
   * Ends the attempt: `sent` completes the job; anything else fails it (its outcome in the
   * reason, see `failureReason`), to be retried by BullMQ when it is transient and attempts are
   * left, else for good.
   */
  async function finish(
    job: Job<JobData, QueueOutcome>,
    token: string,
    dots: DotMarker,
    outcome: QueueOutcome,
    how: { readonly transient?: boolean; readonly recovered?: boolean },
  ): Promise<QueueOutcome> {
    if (outcome.status === 'sent') {
      count('sent');
      return outcome;
    }
    const retry = how.transient === true && job.attemptsMade + 1 < (job.opts.attempts ?? 1);
    // After a verdict (or before the dot) a retry is safe, so the marker goes; after a lost verdict it stays.
    // On the worker's connection, so it reaches Redis before BullMQ moves the job.
    if (outcome.status !== 'possibly-delivered') await dots.clear(outcome.jobId, token).catch(() => false);
    count(retry ? 'retried' : COUNTER[outcome.status], how.recovered);
    const reason = failureReason(outcome);
    throw retry ? new Error(reason) : new UnrecoverableError(reason);
  }

  const throttle = options.throttlePause ?? { baseMs: 1000, maxMs: 30_000 };
  const pauses: Subscription | undefined =
    throttle === false
      ? undefined
      : pool.events$.pipe(filter((e) => e.type === 'throttled')).subscribe((e) => {
          const ms = Math.min(throttle.maxMs, throttle.baseMs * 2 ** (e.level - 1));
          worker
            .getBackend()
            .setRateLimit(ms)
            .catch((err: unknown) =>
              logger?.warn({ event: 'throttle-pause', error: String(err) }, 'rx-smtp queue: could not pause the queue'),
            );
        });

  const stats$ = combineLatest([pool.stats$, counts]).pipe(
    map(([stats, mine]): WorkerStats => ({ ...stats, ...mine })),
  );

  return {
    stats$,
    pool,
    worker,
    async close() {
      pauses?.unsubscribe();
      try {
        // Graceful while Redis answers; with Redis gone BullMQ's close waits for ever, so it is forced
        // after closeTimeoutMs (the jobs it held come back to another worker as stalled, marker and all).
        await closeWithin(worker, options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS, logger);
      } finally {
        if (owned) await pool.close();
        counts.complete();
      }
    },
  };
}

const CLOSE_TIMEOUT_MS = 60_000;

/**
 * Closes BullMQ's worker: the jobs it holds may end for `ms` (graceful), then it is closed forced.
 *
 * The graceful part is `pause()` (no new job; waits for those held), not `close()`: with Redis gone
 * BullMQ's `close()` waits for ever, and a `close(true)` after it only returns that same promise,
 * leaving ioredis reconnecting (a process that cannot exit). `close(true)` itself waits for no job
 * and disconnects instead of sending QUIT; by then the worker holds none, or was given up on.
 */
async function closeWithin(
  worker: Worker<JobData, QueueOutcome>,
  ms: number,
  logger: PoolLogger | undefined,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  try {
    if ((await Promise.race([worker.pause(), late])) === 'late') {
      logger?.warn(
        { event: 'worker-close-forced', afterMs: ms },
        'rx-smtp queue: the worker did not close in time; forcing it',
      );
    }
    await Promise.race([worker.close(true), new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
  } finally {
    clearTimeout(timer);
  }
}

/** Transactions a pool made from `config` runs at once. */
function capacityOf(config: PoolConfig): number {
  return (config.maxConnections ?? 5) * (config.maxInFlightPerConnection ?? 4);
}

function positive(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0))
    throw new SMTPInvalidArgumentError(`rx-smtp/queue: ${name} must be a positive integer, got ${value}`);
  return value;
}
