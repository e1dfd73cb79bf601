import { SMTPErrorCode, SMTPRecipientsRefused, hasCode } from '../errors';
import { MailOptions, RcptOptions, Recipient } from '../session/envelope';
import type { SendEvent } from '../session/sendmail';
import { Body } from '../wire/body-source';
import { Reply } from '../wire/reply';

/**
 * One message for `sendAll`. `body` may be a function that returns a fresh body
 * for each attempt: a stream can be read once, so only a function (or a
 * string, bytes, or a cold Observable) lets a transient failure be retried.
 */
export interface PoolMessage<Id = unknown> {
  readonly from: string;
  readonly to: string | readonly (string | Recipient)[];
  /** The message, or a function that returns a fresh copy of it for each attempt. */
  readonly body: Body | (() => Body);
  readonly mailOptions?: MailOptions;
  readonly rcptOptions?: RcptOptions;
  /** Yours, carried through to the outcome untouched. */
  readonly id?: Id;
  /**
   * Runs in each attempt right before the end of the message is written, and the end waits for
   * it (`SendHooks.beforeEnd`): where a durable queue records that the message may now be
   * delivered. If it rejects, the attempt fails with its error, not retried, since the end was
   * never written; if it does not settle within the data-block timeout, the attempt fails as
   * transient.
   */
  readonly beforeEnd?: () => PromiseLike<void>;
  /**
   * Called with each event of each try as the transaction emits it (`recipient` per RCPT reply,
   * `progress`, LMTP `delivery`, then `sent`; not those of `retryRecipients`' follow-ups): where a
   * durable queue publishes a job's progress. `send$` itself emits only the outcome.
   */
  readonly onEvent?: (event: SendEvent) => void;
}

/**
 * How one message ended; exactly one per message.
 * - `sent`: the server accepted it; `refused` holds the recipients that finally did not
 *   take it. With `retryRecipients`, those refused with a 4xx are tried again alone, in
 *   follow-up transactions under `retry` (the others already have the message); `deferred`
 *   holds those whose last answer was still a 4xx when the retries ran out (a subset of
 *   `refused`). A follow-up lost after its body ends the retries: its recipients stay in
 *   `refused` and not in `deferred`, since they may have it.
 * - `refused`: permanent; resending it unchanged fails again (a 5xx, or a message
 *   that cannot be sent as given: a bad address, an extension the server lacks).
 * - `failed`: transient (a 4xx, a connection lost before the end of the body, a
 *   timeout) and the retries ran out, or an unexpected error; the server does not have it.
 * - `possibly-delivered`: the connection failed after the end of the body and
 *   before the server's verdict (RFC 5321 §4.5.3.2, RFC 1047). Never retried.
 */
export type SendOutcome<Id = unknown> =
  | {
      readonly status: 'sent';
      readonly message: PoolMessage<Id>;
      readonly reply: Reply;
      readonly refused: Readonly<Record<string, Reply>>;
      readonly deferred: Readonly<Record<string, Reply>>;
      readonly attempts: number;
    }
  | {
      readonly status: 'refused' | 'failed' | 'possibly-delivered';
      readonly message: PoolMessage<Id>;
      readonly error: unknown;
      readonly attempts: number;
    };

/** How a message that was not sent ended (`SendOutcome`'s statuses but `sent`). */
export type FailureStatus = Exclude<SendOutcome['status'], 'sent'>;

/** What an error from a transaction means for the message: its status, and whether trying again may help. */
export function classifyFailure(err: unknown): { readonly status: FailureStatus; readonly transient: boolean } {
  // Matched on `code`, not `instanceof` (see errors.ts).
  if (hasCode(err, 'ERR_SMTP_POSSIBLY_DELIVERED')) return { status: 'possibly-delivered', transient: false };
  const code = smtpCodeOf(err);
  if (code !== undefined) {
    // RFC 5321 §4.2.1: a 4yz reply is transient, a 5yz one permanent.
    return code >= 400 && code < 500 ? { status: 'failed', transient: true } : { status: 'refused', transient: false };
  }
  if (PERMANENT.some((c) => hasCode(err, c))) return { status: 'refused', transient: false };
  // A lost connection or a timer before the end of the body: the server does not have the message.
  // A protocol violation is the server's fault and may not recur on a fresh connection.
  if (TRANSIENT.some((c) => hasCode(err, c))) return { status: 'failed', transient: true };
  return { status: 'failed', transient: false };
}

/** Refused before a byte was written: resending the same message fails the same way. */
const PERMANENT: readonly SMTPErrorCode[] = [
  'ERR_SMTP_INVALID_ARGUMENT',
  'ERR_SMTP_NOT_SUPPORTED',
  'ERR_SMTP_SIZE_EXCEEDED',
];
const TRANSIENT: readonly SMTPErrorCode[] = [
  'ERR_SMTP_SERVER_DISCONNECTED',
  'ERR_SMTP_TIMEOUT',
  'ERR_SMTP_PROTOCOL',
  'ERR_SMTP_REPLY_LIMIT',
];

/**
 * The reply code that decided a failure: the server's code for a response
 * error; for refused recipients the highest of their codes (a 4xx only when
 * every refusal was transient), 550 when none were given. Undefined when no reply decided it.
 */
function smtpCodeOf(err: unknown): number | undefined {
  if (hasCode(err, 'ERR_SMTP_RECIPIENTS_REFUSED')) {
    return Object.values((err as SMTPRecipientsRefused).recipients).reduce((max, r) => Math.max(max, r.code), 0) || 550;
  }
  const code = (err as { smtpCode?: unknown } | null)?.smtpCode;
  return err instanceof Error && typeof code === 'number' ? code : undefined;
}

/**
 * Whether an error leaves the connection in a known, idle state: a refusal
 * (the session sent RSET, or closed on 421) or a message rejected before any
 * byte was written. After anything else the connection is not reused.
 */
export function leavesConnectionClean(err: unknown): boolean {
  return smtpCodeOf(err) !== undefined || PERMANENT.some((c) => hasCode(err, c));
}

/** The refused recipients worth another transaction: a 4xx is transient (RFC 5321 §4.2.1). */
export function transientRefusals(refused: Readonly<Record<string, Reply>>): string[] {
  return Object.entries(refused)
    .filter(([, reply]) => reply.code >= 400 && reply.code < 500)
    .map(([address]) => address);
}

/**
 * The refusals after a follow-up to `retried`: the earlier ones for everyone else, and for
 * `retried` what the follow-up said (`now`: refused there; absent: it took the message).
 */
export function mergeRefusals(
  before: Readonly<Record<string, Reply>>,
  retried: readonly string[],
  now: Readonly<Record<string, Reply>>,
): Record<string, Reply> {
  const merged: Record<string, Reply> = {};
  for (const [address, reply] of Object.entries(before)) if (!retried.includes(address)) merged[address] = reply;
  for (const address of retried) {
    const refusal = now[address];
    if (refusal) merged[address] = refusal;
  }
  return merged;
}

/**
 * What a failed follow-up says about its recipients: each one's refusal, or (no verdict per
 * recipient) the ones they had.
 */
export function refusalsAfter(
  err: unknown,
  retried: readonly string[],
  before: Readonly<Record<string, Reply>>,
): Readonly<Record<string, Reply>> {
  if (hasCode(err, 'ERR_SMTP_RECIPIENTS_REFUSED')) return (err as SMTPRecipientsRefused).recipients;
  return refusalsOf(before, retried);
}

/** The refusals of `addresses` among `refused` (an address with none is left out). */
export function refusalsOf(
  refused: Readonly<Record<string, Reply>>,
  addresses: readonly string[],
): Record<string, Reply> {
  return Object.fromEntries(Object.entries(refused).filter(([address]) => addresses.includes(address)));
}
