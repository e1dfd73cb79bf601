import { randomUUID } from 'node:crypto';
import { UsageError } from './args';

/** What a minimal message is made of. */
export interface Draft {
  readonly from: string;
  readonly to: readonly string[];
  readonly cc?: readonly string[] | undefined;
  readonly subject?: string | undefined;
  /** Extra header fields, `Name: value` each. */
  readonly headers?: readonly string[] | undefined;
  readonly text: string;
}

/**
 * A minimal RFC 5322 message: Date, Message-ID, From, To, Cc, Subject, the extra fields, a
 * plain-text body (8bit only when it is not ASCII). Bcc is never written (RFC 5322 §3.6.3:
 * blind recipients are in the envelope only).
 */
export function composeMessage(draft: Draft): string {
  const ascii = /^[\x00-\x7f]*$/.test(draft.text);
  const fields = [
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${randomUUID()}@rx-smtp>`,
    `From: ${draft.from}`,
    `To: ${draft.to.join(', ')}`,
    ...(draft.cc?.length ? [`Cc: ${draft.cc.join(', ')}`] : []),
    ...(draft.subject !== undefined ? [`Subject: ${draft.subject}`] : []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${ascii ? '7bit' : '8bit'}`,
    ...(draft.headers ?? []).map(headerField),
  ];
  for (const field of fields) noLineBreak(field);
  return `${fields.join('\r\n')}\r\n\r\n${draft.text}`;
}

function headerField(field: string): string {
  if (!/^[!-9;-~]+:/.test(field)) throw new UsageError(`--header ${JSON.stringify(field)}: expected 'Name: value'`);
  return field;
}

/** A CR or LF in a field would start a new one: header injection. */
function noLineBreak(field: string): void {
  if (/[\r\n]/.test(field))
    throw new UsageError(`a header field carries a line break: ${JSON.stringify(field.split(':')[0])}`);
}
