import { SMTPDataError, SMTPProtocolError, SMTPRecipientsRefused, SMTPSenderRefused } from '../errors';
import { Reply } from '../wire/reply';
import { Envelope } from './envelope';

/**
 * Everything the server answered in one transaction so far, in wire order. The verdict on a
 * message is a function of these and of the envelope alone: the state machine in `sendmail.ts`
 * only collects them.
 */
export interface TransactionReplies {
  /** The reply to MAIL FROM. */
  readonly mail?: Reply;
  /** One per RCPT answered so far, in the envelope's order. */
  readonly rcpts: readonly Reply[];
  /** The reply to DATA (DATA mode only). */
  readonly data?: Reply;
  /** The replies to the BDAT chunks before the last (RFC 3030). */
  readonly chunks: readonly Reply[];
  /** The reply to the final dot or BDAT LAST; LMTP: one per accepted recipient (RFC 2033 §4.2). */
  readonly finals: readonly Reply[];
}

/** What a transaction amounts to: `sent` with smtplib's refused map, or the error that ends it. */
export type Verdict =
  | { readonly type: 'sent'; readonly reply: Reply; readonly refused: Readonly<Record<string, Reply>> }
  | { readonly type: 'error'; readonly error: SMTPSenderRefused | SMTPRecipientsRefused | SMTPDataError };

/** smtplib: 250 and 251 (RFC 5321 §3.4, "will forward") accept a recipient; anything else refuses it. */
export function isAccepted(reply: Reply): boolean {
  return reply.code === 250 || reply.code === 251;
}

/**
 * The recipients the RCPT replies accepted, in order (LMTP answers the end of data once for each).
 * After a refused MAIL the RCPT replies only say "need MAIL": no recipient is accepted.
 */
export function acceptedRecipients(envelope: Envelope, replies: TransactionReplies): string[] {
  if (replies.mail?.code !== 250) return [];
  return rcptAnswers(envelope, replies)
    .filter(({ reply }) => isAccepted(reply))
    .map(({ address }) => address);
}

/** Each recipient asked so far with its RCPT reply (the replies come in the envelope's order). */
function rcptAnswers(envelope: Envelope, replies: TransactionReplies): { address: string; reply: Reply }[] {
  return envelope.recipients.flatMap(({ address }, i) => {
    const reply = replies.rcpts[i];
    return reply ? [{ address, reply }] : [];
  });
}

/**
 * The verdict on the envelope once it is answered (or cut short by a 421): the sender refused,
 * every recipient refused, or DATA refused. Undefined while the message may go on.
 */
export function envelopeVerdict(
  envelope: Envelope,
  replies: TransactionReplies,
): SMTPSenderRefused | SMTPRecipientsRefused | SMTPDataError | undefined {
  const { mail, rcpts, data } = replies;
  if (mail && mail.code !== 250) {
    return new SMTPSenderRefused(mail.code, mail.message, envelope.sender, {
      reply: mail,
      command: envelope.mail.debugText,
    });
  }
  // smtplib stops at a 421 to RCPT: the server is leaving, so the later recipients are not asked.
  const closing = rcpts.some((r) => r.code === 421);
  const allAnswered = rcpts.length === envelope.recipients.length;
  if (closing || (allAnswered && !rcpts.some(isAccepted)))
    return new SMTPRecipientsRefused(rcptRefusals(envelope, replies));
  if (data && data.code !== 354) return SMTPDataError.fromReply(data, 'DATA');
  return undefined;
}

/**
 * The verdict on the whole transaction once every reply is in. SMTP: the one final reply decides
 * (and a refused chunk before it); LMTP: the message failed only when every recipient's delivery
 * did, otherwise the failed deliveries join the refused map.
 */
export function transactionVerdict(envelope: Envelope, replies: TransactionReplies, lmtp: boolean): Verdict {
  const refusedEnvelope = envelopeVerdict(envelope, replies);
  if (refusedEnvelope) return { type: 'error', error: refusedEnvelope };
  const { finals, chunks } = replies;
  const last = finals.at(-1);
  // The caller waits for every final reply (at least one) before asking.
  if (last === undefined) throw new SMTPProtocolError('no reply to the end of the message');
  const failed = lmtp ? finals.every((r) => r.code !== 250) : last.code !== 250;
  const failure = chunks.find((r) => r.code !== 250) ?? (failed ? last : undefined);
  if (failure) {
    return { type: 'error', error: SMTPDataError.fromReply(failure, envelope.mode === 'data' ? '.' : 'BDAT LAST') };
  }
  const refused = rcptRefusals(envelope, replies);
  if (lmtp) {
    const accepted = acceptedRecipients(envelope, replies);
    finals.forEach((reply, i) => {
      const recipient = accepted[i];
      if (recipient !== undefined && reply.code !== 250) refused[recipient] = reply;
    });
  }
  return { type: 'sent', reply: last, refused };
}

/** smtplib's refused map: each recipient whose RCPT was refused, with its reply. */
function rcptRefusals(envelope: Envelope, replies: TransactionReplies): Record<string, Reply> {
  const refused: Record<string, Reply> = {};
  if (replies.mail && replies.mail.code !== 250) return refused;
  for (const { address, reply } of rcptAnswers(envelope, replies)) if (!isAccepted(reply)) refused[address] = reply;
  return refused;
}
