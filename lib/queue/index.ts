/**
 * rx-smtp/queue: scale-out across processes and machines on BullMQ and Redis. Producers queue
 * messages (`MailQueue`), workers on any number of machines send them, each through its own
 * `SMTPPool` (`startWorker`), and every job's one outcome comes back on `outcomes$`.
 *
 * `bullmq` and `ioredis` are optional peer dependencies: only this entry point loads them, never
 * `rx-smtp` itself.
 *
 * @module rx-smtp/queue
 */
export { MailQueue } from './mail-queue';
export type { MailQueueOptions } from './mail-queue';
export { startWorker } from './worker';
export type { MailWorker, MailWorkerOptions, WorkerStats, WorkerTuning } from './worker';
export { outcomes$, progress$ } from './outcomes';
export type { OutcomesOptions, QueueProgress, QueueRef } from './outcomes';
export type { JobProgress, RecipientEvent } from './progress';
export type { QueueOutcome, OutcomeError } from './outcome';
export type { BodyResolver, JobData, QueueBody, QueueEnvelope, QueueMessage } from './job-data';
export { SMTPQueueError, MARKER_FIELD } from './marker';
export type { QueueErrorReason } from './marker';
export { limiterFor } from './rate-limit';
export type { BullLimiter } from './rate-limit';
export { BACKOFF_TYPE, backoffStrategy } from './backoff';
