import type { SendEvent } from '../session/sendmail';

/** A per-recipient result as a job's progress carries it: the pool's `recipient` or LMTP `delivery` event. */
export type RecipientEvent = Extract<SendEvent, { readonly type: 'recipient' | 'delivery' }>;

/**
 * A job's progress (BullMQ's `job.progress`, and `progress$`): the attempt under way (1 for the
 * first) and every per-recipient result of it so far, in wire order.
 */
export interface JobProgress {
  readonly attempt: number;
  readonly recipients: readonly RecipientEvent[];
}

/**
 * Gathers one attempt's per-recipient events and publishes them as the job's progress, the events
 * of one read at once (a pipelined envelope's replies arrive together): one Redis write per burst.
 * A try the pool starts again (after a "slow down") begins a fresh list.
 */
export class ProgressPublisher {
  private recipients: RecipientEvent[] = [];
  private scheduled = false;

  constructor(
    private readonly attempt: number,
    private readonly publish: (progress: JobProgress) => Promise<unknown>,
  ) {}

  /** The pool's `onEvent`. */
  readonly onEvent = (event: SendEvent): void => {
    if (event.type !== 'recipient' && event.type !== 'delivery') return;
    // A recipient seen again in a recipient event: the pool is trying the message again.
    if (
      event.type === 'recipient' &&
      this.recipients.some((e) => e.type === 'recipient' && e.recipient === event.recipient)
    )
      this.recipients = [];
    this.recipients.push(event);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      // Progress is for watching: a write Redis refuses costs the job nothing.
      this.publish({ attempt: this.attempt, recipients: [...this.recipients] }).catch(() => undefined);
    });
  };
}
