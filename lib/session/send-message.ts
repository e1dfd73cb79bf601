import { isAscii } from 'node:buffer';
import { Observable, concat, concatMap, defer, of } from 'rxjs';
import { envelopeFromHeaders, stripBcc } from '../message/envelope';
import { ParsedHeaders, splitHeaderBlock$ } from '../message/header-block';
import { mailboxForWire, reversePathForWire } from '../message/mailbox';
import { SmtpConnection } from '../transport/connection';
import { Body, toChunks$ } from '../wire/body-source';
import { MailOptions, RcptOptions, mailOptionsOf, rcptOptionsOf } from './envelope';
import { Session } from './session';
import { SendEvent, sendmail$ } from './sendmail';

/**
 * Sends a raw RFC 5322 message with the envelope read from its own headers:
 * smtplib's `send_message`, streamed. Only the header block is buffered (at
 * most 256 KiB); the body goes to the socket as it is read, at the socket's pace.
 *
 * ```
 * message:         --h--h+b----------b--b--|
 * sendMessage$(…): --------r--r--p--------p--(sent|)     r: recipient  p: progress
 * ```
 *
 * - Sender: `Sender` if present, else `From`; recipients: every `To`, `Bcc` and
 *   `Cc` field (smtplib reads only the first of each name). With exactly one
 *   `Resent-Date` field the `Resent-*` fields are read instead; more than one
 *   resent block is refused. `fromAddr`/`toAddrs` win over the headers.
 * - `Bcc` and `Resent-Bcc` fields are removed from the bytes sent; the
 *   caller's message is never modified.
 * - An address with a non-ASCII local part, or a header field with UTF-8 in it
 *   (RFC 6532), adds `SMTPUTF8` and `BODY=8BITMIME` to MAIL (RFC 6531 §3.1: an
 *   SMTPUTF8 server offers 8BITMIME), or fails with `SMTPNotSupportedError`
 *   before MAIL when the server does not offer SMTPUTF8. A non-ASCII domain goes
 *   out as A-labels and needs neither. Nothing is added to the caller's options,
 *   so passing the same options again sends the same MAIL.
 * - A string or `Uint8Array` message is sent with `SIZE=` of the bytes actually
 *   sent (after the Bcc fields are removed); a streamed one without `SIZE=`.
 *
 * A Readable or AsyncIterable is pulled freely while the header is read, not at
 * all while the envelope is exchanged, then only while the socket can take more,
 * so memory stays flat whatever the size. An Observable message pushes and
 * cannot be paused: what it emits during the envelope's round trip is held.
 *
 * @example
 * sendMessage$(session, fs.createReadStream('mail.eml')).subscribe((event) => console.log(event));
 *
 * @param session a connected session (EHLO is sent first if it was not).
 * @param message the whole message, header and body, in any `Body` shape.
 * @param fromAddr the reverse path, instead of the header's (`''` for `<>`).
 * @param toAddrs the recipients, instead of the headers'.
 * @param mailOptions as for `sendmail$` (smtplib's list of strings, or structured).
 * @param rcptOptions as for `sendmail$`.
 * @return the events of `sendmail$`. Errors with `SMTPInvalidArgumentError`
 *   before any command is sent when the message has no sender or recipient, more
 *   than one resent block, an unparsable address field, an address that cannot
 *   be sent safely, or a header block over 256 KiB; otherwise as `sendmail$`.
 */
export function sendMessage$(
  session: Session,
  message: Body,
  fromAddr?: string,
  toAddrs?: string | readonly string[],
  mailOptions: MailOptions | readonly string[] = {},
  rcptOptions: RcptOptions | readonly string[] = {},
): Observable<SendEvent> {
  return defer(() => {
    const override = { from: fromAddr, to: typeof toAddrs === 'string' ? [toAddrs] : toAddrs };
    const send$ = (headers: ParsedHeaders, body: Body): Observable<SendEvent> => {
      const { from, to } = envelopeFromHeaders(headers.fields, override);
      const utf8Headers = headers.fields.some((field) => !isAscii(field.raw));
      const options =
        utf8Headers || international(from, to)
          ? withUtf8(mailOptionsOf(mailOptions), utf8Headers)
          : mailOptionsOf(mailOptions);
      return sendmail$(session, from, to, body, options, rcptOptionsOf(rcptOptions));
    };
    return typeof message === 'string' || message instanceof Uint8Array
      ? inMemory$(message, send$)
      : streamed$(session.connection, message, send$);
  });
}

type Send = (headers: ParsedHeaders, body: Body) => Observable<SendEvent>;

/** A message already in memory: sent as bytes, so `sendmail$` knows the size and whether it is 8-bit. */
function inMemory$(message: string | Uint8Array, send$: Send): Observable<SendEvent> {
  const bytes = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
  return splitHeaderBlock$(of(bytes)).pipe(
    concatMap(({ headers }) => {
      const headerLength = headers.fields.reduce((n, field) => n + field.raw.length, 0);
      const kept = stripBcc(headers.fields);
      // Nothing removed: the caller's bytes as they are; else a copy (the caller's are never touched).
      const body =
        kept.length === headerLength
          ? bytes
          : Buffer.concat([kept, headers.separator, bytes.subarray(headerLength + headers.separator.length)]);
      return send$(headers, body);
    }),
  );
}

/** A streamed message: the stripped header, then the rest of the source as it is read. */
function streamed$(connection: SmtpConnection, message: Body, send$: Send): Observable<SendEvent> {
  const pacer = new Pacer(connection);
  return splitHeaderBlock$(toChunks$(message, { ready: pacer.ready })).pipe(
    // concatMap keeps the split subscribed (so the source too) until the transaction ends.
    concatMap(({ headers, rest$ }) => {
      pacer.hold();
      const head = Buffer.concat([stripBcc(headers.fields), headers.separator]);
      return send$(headers, concat(of(head), pacer.release(rest$)));
    }),
  );
}

/**
 * The backpressure gate of a streamed message. The header is read freely (it is
 * bounded); then nothing is read until the transaction subscribes to the body,
 * since every chunk read during the envelope's round trip would be held in
 * memory; then a chunk is read only while the socket can take more.
 */
class Pacer {
  private phase: 'header' | 'held' | 'body' = 'header';
  private wanted!: () => void;
  private readonly bodyWanted = new Promise<void>((resolve) => (this.wanted = resolve));

  constructor(private readonly connection: SmtpConnection) {}

  /** `toChunks$`'s `ready`: called before each chunk is pulled from the source. */
  readonly ready = (): Promise<void> | undefined => {
    if (this.phase === 'header') return undefined;
    return this.phase === 'held' ? this.bodyWanted : this.connection.whenWritable();
  };

  /** The header was found: stop reading. */
  hold(): void {
    if (this.phase === 'header') this.phase = 'held';
  }

  /** `rest$`, which resumes reading when the transaction subscribes to it. */
  release(rest$: Observable<Uint8Array>): Observable<Uint8Array> {
    return defer(() => {
      this.phase = 'body';
      this.wanted();
      return rest$;
    });
  }
}

/**
 * smtplib's `international`: an envelope address needs UTF-8 on the wire. A
 * non-ASCII domain does not (it goes as A-labels); a display name never reaches
 * the wire. Malformed addresses are left for `planEnvelope` to refuse.
 */
function international(from: string, to: readonly string[]): boolean {
  const needs = (wire: () => { needsSmtputf8: boolean }): boolean => {
    try {
      return wire().needsSmtputf8;
    } catch {
      return false;
    }
  };
  const utf8 = { smtputf8: true };
  return (
    needs(() => reversePathForWire(from, utf8)) || to.some((address) => needs(() => mailboxForWire(address, utf8)))
  );
}

/**
 * smtplib adds `BODY=8BITMIME` with `SMTPUTF8`: a message to an internationalised
 * address may carry UTF-8 headers (RFC 6532). UTF-8 header fields ask for
 * `SMTPUTF8` themselves (RFC 6531 §3.4), which `planEnvelope` refuses when the
 * server does not offer it. A new object, so the caller's options never change;
 * the caller's own `BODY` (structured, or in `params`, which `planEnvelope` lets
 * win) is kept.
 */
function withUtf8(options: MailOptions, utf8Headers: boolean): MailOptions {
  return { ...options, body: options.body ?? '8BITMIME', ...(utf8Headers ? { smtputf8: true } : {}) };
}
