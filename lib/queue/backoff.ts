import type { BackoffOptions, MinimalJob } from 'bullmq';
import type { JobData } from './job-data';

/** The backoff type a `MailQueue` gives its jobs, computed by every worker (`backoffStrategy`). */
export const BACKOFF_TYPE = 'rx-smtp';

/**
 * The wait before retry `attemptsMade` of a job whose backoff is `rx-smtp`: the job's `delay`,
 * doubling, at most its `maxBackoffMs` (`RetryPolicy`; BullMQ's own exponential backoff has no
 * ceiling). Given to BullMQ as the worker's `backoffStrategy`.
 *
 * ```
 * delay 1000, max 5000:  attempt 1 → 1000, 2 → 2000, 3 → 4000, 4 → 5000
 * ```
 */
export function backoffStrategy(attemptsMade: number, type?: string, _err?: Error, job?: MinimalJob): number {
  // BullMQ asks only for types it does not know; any other is not ours.
  if (type !== BACKOFF_TYPE) return -1;
  const delay = (job?.opts.backoff as BackoffOptions | undefined)?.delay ?? 0;
  const max = (job?.data as Partial<JobData> | undefined)?.maxBackoffMs ?? Infinity;
  return Math.min(delay * 2 ** Math.max(0, attemptsMade - 1), max);
}
