import type { SendOutcome } from '../pool/outcome';
import type { Reply } from '../wire/reply';
import type { QueueEnvelope } from './job-data';

/**
 * An error as it crosses Redis: its stable `code` (match on it, as on the error itself), its text,
 * and the server's reply when one decided it (`recipients` for "all recipients refused").
 */
export interface OutcomeError {
  readonly code?: string;
  readonly name?: string;
  readonly message: string;
  readonly smtpCode?: number;
  readonly reply?: Reply;
  readonly recipients?: Readonly<Record<string, Reply>>;
}

/**
 * A job's one final outcome: the pool's `SendOutcome` as JSON, so that it can travel through Redis
 * to any machine. `message` is the envelope without the body; `jobId` names the job; `error` is an
 * `OutcomeError`; `attempts` counts the tries of every worker that sent it.
 */
export type QueueOutcome<Id extends string = string> = AsJson<SendOutcome<Id>, Id>;

/** One case of `SendOutcome` as it crosses Redis (distributes over the union). */
type AsJson<O, Id extends string> = O extends { readonly error: unknown }
  ? Omit<O, 'message' | 'error'> & {
      readonly jobId: string;
      readonly message: QueueEnvelope<Id>;
      readonly error: OutcomeError;
    }
  : Omit<O, 'message'> & { readonly jobId: string; readonly message: QueueEnvelope<Id> };

/** A pool's outcome as a job's, `attempts` counted from the job's earlier tries. */
export function toQueueOutcome<Id extends string>(
  outcome: SendOutcome,
  jobId: string,
  message: QueueEnvelope<Id>,
  earlierAttempts: number,
): QueueOutcome<Id> {
  const attempts = earlierAttempts + outcome.attempts;
  if (outcome.status === 'sent') {
    const { reply, refused, deferred } = outcome;
    return { status: 'sent', jobId, message, reply, refused, deferred, attempts };
  }
  return { status: outcome.status, jobId, message, error: describeError(outcome.error), attempts };
}

/** The parts of an error worth carrying: never its stack, nor its cause (they may hold anything). */
export function describeError(err: unknown): OutcomeError {
  if (!(err instanceof Error)) return { message: String(err) };
  const e = err as Error & { code?: unknown; smtpCode?: unknown; reply?: Reply; recipients?: Record<string, Reply> };
  return {
    ...(typeof e.code === 'string' && { code: e.code }),
    name: e.name,
    message: e.message,
    ...(typeof e.smtpCode === 'number' && { smtpCode: e.smtpCode }),
    ...(e.reply && { reply: e.reply }),
    ...(e.recipients && { recipients: e.recipients }),
  };
}

/**
 * A failed job's `failedReason` (BullMQ keeps nothing else of a failure): one line for people
 * (dashboards show it: the status, the text, the code), then the outcome as JSON for `outcomes$`,
 * so that the event carries it whole, even when the job is removed as it fails.
 *
 * ```
 * refused: All recipients were refused: c@x [ERR_SMTP_RECIPIENTS_REFUSED]
 * {"status":"refused","jobId":"42",…}
 * ```
 */
export function failureReason(outcome: QueueOutcome): string {
  const line =
    outcome.status === 'sent'
      ? `sent: ${outcome.reply.code}`
      : `${outcome.status}: ${outcome.error.message}${outcome.error.code ? ` [${outcome.error.code}]` : ''}`;
  return `${line.replace(/[\r\n]+/g, ' ')}\n${JSON.stringify(outcome)}`;
}

/** The outcome in a `failureReason`, or undefined for a reason BullMQ wrote itself. */
export function outcomeFromReason<Id extends string>(reason: string): QueueOutcome<Id> | undefined {
  const json = reason.slice(reason.indexOf('\n') + 1);
  if (!reason.includes('\n') || !json.startsWith('{')) return undefined;
  try {
    return JSON.parse(json) as QueueOutcome<Id>;
  } catch {
    return undefined;
  }
}
