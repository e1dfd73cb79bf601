import type { IRedisClient } from 'bullmq';
import { SMTPException } from '../errors';

/**
 * The "final dot" marker: a field of the job's own hash in Redis, written by the worker that holds
 * the job right before the end of the message goes on the wire. A job that comes back to a worker
 * (its holder died, BullMQ moved it from active back to waiting) with the marker set may have been
 * delivered: it ends `possibly-delivered` and is not sent again.
 *
 * Both scripts check the job's BullMQ lock first, atomically: a worker whose lock expired (a
 * stall it did not notice) can neither mark a job another worker now holds, nor write its dot.
 */
export const MARKER_FIELD = 'rxsmtp:dot';

/**
 * Why the queue stopped an attempt: the job is another worker's now, it was already marked, or Redis did not answer
 * (`timeout`: not within `MailQueueOptions.timeoutMs`).
 */
export type QueueErrorReason = 'lock-lost' | 'marked' | 'unavailable' | 'timeout';

/**
 * The queue could not record a message's final dot, so the end of the message was not written:
 * the server certainly does not have it. `reason` says why.
 */
export class SMTPQueueError extends SMTPException {
  override readonly code = 'ERR_SMTP_QUEUE';
  constructor(
    readonly reason: QueueErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// KEYS[1] the job's hash, KEYS[2] its lock; ARGV[1] the lock token, ARGV[2] the marker's value
// (the token, a blank, the time). A marker with this token is this attempt's own: the pool tries
// a message again within an attempt only after the server's verdict (a "slow down", a 4xx), never
// after a lost one, so it may be written again. Any other token is an earlier holder's.
const MARK = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local marked = redis.call('HGET', KEYS[1], '${MARKER_FIELD}')
if marked and string.sub(marked, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return -2 end
redis.call('HSET', KEYS[1], '${MARKER_FIELD}', ARGV[2])
return 1`;

// KEYS as MARK; ARGV[1] the lock token.
const CLEAR = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('HDEL', KEYS[1], '${MARKER_FIELD}')
return 1`;

const MARK_COMMAND = 'rxSmtpMarkDot';
const CLEAR_COMMAND = 'rxSmtpClearDot';

/**
 * The marker's operations on one Redis connection: the worker's own, so that they reach Redis in
 * order with the moves BullMQ makes on it (a cleared marker is cleared before the job is back in
 * the waiting list).
 */
export class DotMarker {
  private constructor(
    private readonly client: IRedisClient,
    private readonly toKey: (id: string) => string,
    private readonly timeoutMs: number,
  ) {}

  static async on(client: Promise<IRedisClient>, toKey: (id: string) => string, timeoutMs: number): Promise<DotMarker> {
    const redis = await client;
    redis.defineCommand(MARK_COMMAND, { numberOfKeys: 2, lua: MARK });
    redis.defineCommand(CLEAR_COMMAND, { numberOfKeys: 2, lua: CLEAR });
    return new DotMarker(redis, toKey, timeoutMs);
  }

  /** Whether a worker wrote (or was about to write) the job's final dot. */
  async present(jobId: string): Promise<boolean> {
    return (await this.deadline(this.client.hget(this.toKey(jobId), MARKER_FIELD), 'read the marker of')) !== null;
  }

  /**
   * Records that the final dot is about to be written, if `token` still holds the job.
   * @throws SMTPQueueError when it does not, when the marker is there already, or when Redis does not answer in time.
   */
  async mark(jobId: string, token: string): Promise<void> {
    const key = this.toKey(jobId);
    const value = `${token} ${new Date().toISOString()}`;
    const result = (await this.deadline(
      this.client.runCommand(MARK_COMMAND, [key, `${key}:lock`, token, value]),
      'mark',
    )) as number;
    if (result === -1)
      throw new SMTPQueueError(
        'lock-lost',
        `Job ${jobId} is no longer held by this worker: its final dot was not written`,
      );
    if (result === -2)
      throw new SMTPQueueError('marked', `Job ${jobId} was marked by another attempt: it may have been delivered`);
  }

  /**
   * Clears the marker after the server's verdict (a refusal, a 4xx to the final dot): a retry is
   * then safe. Only if `token` still holds the job.
   * @return whether it did (false: the job is another worker's now).
   */
  async clear(jobId: string, token: string): Promise<boolean> {
    const key = this.toKey(jobId);
    return (
      (await this.deadline(
        this.client.runCommand(CLEAR_COMMAND, [key, `${key}:lock`, token]),
        'clear the marker of',
      )) === 1
    );
  }

  /** Redis queues commands while it is away (BullMQ's workers never give up on one): bound the wait. */
  private deadline<T>(command: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new SMTPQueueError('unavailable', `Redis did not answer within ${this.timeoutMs} ms (${what} a job)`)),
        this.timeoutMs,
      );
    });
    return Promise.race([command, expired]).finally(() => clearTimeout(timer));
  }
}
