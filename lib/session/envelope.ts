import { SMTPInvalidArgumentError, SMTPNotSupportedError, SMTPSizeExceededError } from '../errors';
import { mailboxForWire, reversePathForWire } from '../message/mailbox';
import { BodyFacts } from '../wire/body-source';
import { sizeLimit } from '../wire/capabilities';
import { Command, checkArgument, command } from '../wire/command';
import { xtext } from '../wire/xtext';
import { Session, hasExtension } from './session';

/** Options of one message (MAIL FROM). Arrays of strings are smtplib's `mail_options`. */
export interface MailOptions {
  /** ESMTP parameters sent verbatim (`'SMTPUTF8'`, `'BODY=8BITMIME'`, …), as smtplib's `mail_options`. */
  readonly params?: readonly string[];
  /** `BODY=`: default `8BITMIME` when the body has 8-bit bytes and the server offers it (RFC 6152). */
  readonly body?: '7BIT' | '8BITMIME' | 'BINARYMIME';
  /** DSN `RET=` (RFC 3461 §4.3); dropped when the server does not offer DSN. */
  readonly ret?: 'FULL' | 'HDRS';
  /** DSN `ENVID=` (RFC 3461 §4.4), xtext-encoded here. */
  readonly envid?: string;
  /** REQUIRETLS (RFC 8689): refused unless the connection is TLS and the server offers it. */
  readonly requireTls?: boolean;
  /** Use BDAT when the server offers CHUNKING (RFC 3030); default true. */
  readonly chunking?: boolean;
  /**
   * The message has UTF-8 in its header fields (RFC 6532): send `SMTPUTF8` (RFC 6531 §3.4), or
   * fail before MAIL when the server does not offer it. `sendMessage$` sets it when it finds them.
   */
  readonly smtputf8?: boolean;
}

/** Options of one recipient (RCPT TO). Arrays of strings are smtplib's `rcpt_options`. */
export interface RcptOptions {
  readonly params?: readonly string[];
  /** DSN `NOTIFY=` (RFC 3461 §4.1). */
  readonly notify?: 'NEVER' | readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[];
  /** DSN `ORCPT=rfc822;…` (RFC 3461 §4.2); the original address, xtext-encoded here. */
  readonly orcpt?: string;
}

/** A recipient with options of its own. */
export interface Recipient extends RcptOptions {
  readonly address: string;
}

/** What a transaction sends before the body, validated. */
export interface Envelope {
  readonly sender: string;
  readonly mail: Command;
  readonly recipients: readonly { readonly address: string; readonly rcpt: Command }[];
  /** `data` (DATA, dot-stuffed) or `bdat` (BDAT chunks, RFC 3030). */
  readonly mode: 'data' | 'bdat';
  /** BODY=BINARYMIME: the body's bytes go out untouched. */
  readonly binary: boolean;
}

// RFC 5321 §4.1.2: esmtp-keyword ["=" esmtp-value]; the value has no "=", blank or control.
const ESMTP_PARAM = /^[A-Za-z0-9][A-Za-z0-9-]*(?:=[^\s=\x00-\x1f\x7f]+)?$/u;

/** Normalises smtplib's list form and the structured form of the options. */
export function mailOptionsOf(options: readonly string[] | MailOptions = {}): MailOptions {
  return isList(options) ? { params: options } : options;
}

/** Normalises smtplib's list form and the structured form of the recipient options. */
export function rcptOptionsOf(options: readonly string[] | RcptOptions = {}): RcptOptions {
  return isList(options) ? { params: options } : options;
}

function isList(options: readonly string[] | object): options is readonly string[] {
  return Array.isArray(options);
}

/**
 * Builds and checks everything a transaction writes before the body, so that a
 * bad address, option or size fails with a typed error before any byte is sent.
 *
 * Parameters follow smtplib's `sendmail` (`SIZE=` when advertised, options only
 * to ESMTP servers) plus what smtplib leaves to the caller: `BODY=8BITMIME` for
 * 8-bit bodies, `SMTPUTF8` when an address or a header field needs it (RFC 6531),
 * DSN, REQUIRETLS. Unlike smtplib, a body known to be 8-bit is refused by a server
 * without 8BITMIME (RFC 6152) instead of being sent as it is.
 *
 * @throws SMTPInvalidArgumentError for a malformed address or parameter.
 * @throws SMTPNotSupportedError when the message needs an extension the server lacks.
 * @throws SMTPSizeExceededError when the known size is over the server's SIZE.
 */
export function planEnvelope(
  session: Session,
  sender: string,
  recipients: readonly (string | Recipient)[],
  facts: BodyFacts,
  mailOptions: MailOptions = {},
  rcptOptions: RcptOptions = {},
): Envelope {
  const esmtp = session.doesEsmtp;
  const has = (name: string): boolean => esmtp && hasExtension(session, name);
  const explicit = (mailOptions.params ?? []).map((p) => checkParam(p));
  const asked = (name: string): boolean => explicit.some((p) => p.replace(/=.*/s, '').toUpperCase() === name);
  const smtputf8Offered = has('smtputf8');
  if (asked('SMTPUTF8') && !smtputf8Offered) throw new SMTPNotSupportedError('SMTPUTF8 not supported by server');
  // RFC 6531 §3.2: a message with UTF-8 header fields goes only to a server that offers SMTPUTF8.
  if (mailOptions.smtputf8 && !smtputf8Offered) {
    throw new SMTPNotSupportedError(
      'The message has UTF-8 in its header fields (RFC 6532) and the server does not offer SMTPUTF8 (RFC 6531): ' +
        'encode them as RFC 2047 encoded-words to send it to this server',
    );
  }

  const from = reversePathForWire(sender, { smtputf8: smtputf8Offered });
  const rcpts = recipients.map((r) => {
    const recipient = typeof r === 'string' ? { address: r } : r;
    const path = mailboxForWire(recipient.address, { smtputf8: smtputf8Offered });
    return { address: recipient.address, path, options: { ...rcptOptions, ...withoutAddress(recipient) } };
  });
  const needsUtf8 = mailOptions.smtputf8 === true || from.needsSmtputf8 || rcpts.some((r) => r.path.needsSmtputf8);

  const body = mailOptions.body ?? (facts.has8bit && has('8bitmime') ? '8BITMIME' : undefined);
  const binary = body === 'BINARYMIME';
  // RFC 6152 §3: 8-bit data only to a server that offered 8BITMIME (BINARYMIME carries any octet).
  if (facts.has8bit && !binary && !has('8bitmime')) {
    throw new SMTPNotSupportedError(
      'The message has 8-bit data (bytes of 0x80 or more) and the server does not offer 8BITMIME (RFC 6152): ' +
        'encode it as 7-bit MIME (quoted-printable or base64) to send it to this server',
    );
  }
  if (binary && !(has('binarymime') && has('chunking'))) {
    throw new SMTPNotSupportedError('BODY=BINARYMIME needs the BINARYMIME and CHUNKING extensions (RFC 3030)');
  }
  if (mailOptions.requireTls && !(has('requiretls') && session.connection.secure)) {
    throw new SMTPNotSupportedError('REQUIRETLS needs a TLS connection to a server that offers it (RFC 8689)');
  }
  const mode = has('chunking') && mailOptions.chunking !== false ? 'bdat' : 'data';
  const size = wireSize(facts, binary, mode);
  const limit = has('size') ? sizeLimit(session.esmtpFeatures) : undefined;
  if (limit !== undefined && size !== undefined && size > limit) {
    throw new SMTPSizeExceededError(size, limit);
  }

  const params = esmtp
    ? [
        ...(has('size') && size !== undefined ? [`SIZE=${size}`] : []),
        ...(body && !asked('BODY') ? [`BODY=${body}`] : []),
        ...(needsUtf8 && !asked('SMTPUTF8') ? ['SMTPUTF8'] : []),
        ...(has('dsn') && mailOptions.ret ? [`RET=${mailOptions.ret}`] : []),
        ...(has('dsn') && mailOptions.envid !== undefined ? [`ENVID=${xtext(mailOptions.envid)}`] : []),
        ...(mailOptions.requireTls ? ['REQUIRETLS'] : []),
        ...explicit,
      ]
    : [];
  return {
    sender,
    mail: command('MAIL', [`FROM:${from.wire}`, ...params]),
    recipients: rcpts.map((r) => ({
      address: r.address,
      rcpt: command('RCPT', [`TO:${r.path.wire}`, ...(esmtp ? rcptParams(r.options, has('dsn')) : [])]),
    })),
    mode,
    binary,
  };
}

/**
 * The size to declare (RFC 1870 §3: octets sent, CRLFs included), never below the bytes that go
 * out: BINARYMIME sends the body as given; otherwise line ends become CRLF, and DATA doubles
 * line-leading dots (which §3 leaves out of the count: counting them keeps the bound).
 */
function wireSize(facts: BodyFacts, binary: boolean, mode: Envelope['mode']): number | undefined {
  if (binary) return facts.size;
  if (facts.canonicalSize === undefined) return undefined;
  return facts.canonicalSize + (mode === 'data' ? (facts.lineLeadingDots ?? 0) : 0);
}

function withoutAddress({ address: _address, ...options }: Recipient): RcptOptions {
  return options;
}

function rcptParams(options: RcptOptions, dsn: boolean): string[] {
  const params: string[] = [];
  if (dsn && options.notify) params.push(`NOTIFY=${notifyValue(options.notify)}`);
  if (dsn && options.orcpt !== undefined) params.push(`ORCPT=rfc822;${xtext(checkArgument(options.orcpt, 'ORCPT'))}`);
  return [...params, ...(options.params ?? []).map((p) => checkParam(p))];
}

/** The value of DSN's `NOTIFY=` (RFC 3461 §4.1): `NEVER`, or a list of SUCCESS, FAILURE and DELAY. */
export function notifyValue(notify: NonNullable<RcptOptions['notify']>): string {
  const value = notify === 'NEVER' ? 'NEVER' : notify.join(',');
  if (!/^(NEVER|((SUCCESS|FAILURE|DELAY),)*(SUCCESS|FAILURE|DELAY))$/.test(value)) {
    throw new SMTPInvalidArgumentError(`Invalid NOTIFY value: ${JSON.stringify(value)}`);
  }
  return value;
}

/** One ESMTP parameter (`KEYWORD` or `KEYWORD=value`, RFC 5321 §4.1.2), as it may go on the wire. */
export function checkParam(param: string): string {
  checkArgument(param, 'ESMTP parameter');
  if (!ESMTP_PARAM.test(param)) throw new SMTPInvalidArgumentError(`Not an ESMTP parameter: ${JSON.stringify(param)}`);
  return param;
}
