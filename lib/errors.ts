/**
 * The exception hierarchy, named after Python's smtplib one to one, plus the few
 * classes a streaming client needs on top (timeouts, protocol violations, bad
 * arguments, "possibly delivered").
 *
 * Match on `code` (stable strings), not on `instanceof`: two copies of the
 * package in one process have distinct classes but the same codes.
 *
 * Messages never carry a secret: AUTH commands are redacted before they reach
 * an error (see `Command.debugText`).
 */
import type { Reply } from './wire/reply';

/** The stable `code` of every error rx-smtp raises, one per class: what callers match on. */
export type SMTPErrorCode =
  | 'ERR_SMTP'
  | 'ERR_SMTP_NOT_SUPPORTED'
  | 'ERR_SMTP_SIZE_EXCEEDED'
  | 'ERR_SMTP_INSECURE_AUTH'
  | 'ERR_SMTP_SERVER_DISCONNECTED'
  | 'ERR_SMTP_TIMEOUT'
  | 'ERR_SMTP_POOL_CLOSED'
  | 'ERR_SMTP_QUEUE'
  | 'ERR_SMTP_PROTOCOL'
  | 'ERR_SMTP_REPLY_LIMIT'
  | 'ERR_SMTP_INVALID_ARGUMENT'
  | 'ERR_SMTP_POSSIBLY_DELIVERED'
  | 'ERR_SMTP_RESPONSE'
  | 'ERR_SMTP_SENDER_REFUSED'
  | 'ERR_SMTP_RECIPIENTS_REFUSED'
  | 'ERR_SMTP_DATA'
  | 'ERR_SMTP_CONNECT'
  | 'ERR_SMTP_HELO'
  | 'ERR_SMTP_AUTHENTICATION'
  | 'ERR_SMTP_TLS_CERTIFICATE';

/** Base class of every error rx-smtp raises (smtplib's `SMTPException`). */
export class SMTPException extends Error {
  readonly code: SMTPErrorCode = 'ERR_SMTP';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The command or option is not supported by the server (or by this client). */
export class SMTPNotSupportedError extends SMTPException {
  override readonly code: SMTPErrorCode = 'ERR_SMTP_NOT_SUPPORTED';
}

/** Credentials would cross a connection without TLS, and the caller did not allow it. */
export class SMTPInsecureAuthError extends SMTPNotSupportedError {
  override readonly code = 'ERR_SMTP_INSECURE_AUTH';
  constructor() {
    super(
      'Refusing to send credentials over a plaintext connection: call starttls$() first, connect with SMTP_SSL ' +
        '(secure: true), or pass { allowPlaintextAuth: true } if the network is trusted',
    );
  }
}

/** The message is larger than the server's SIZE limit (RFC 1870 §6): refused before MAIL is sent. */
export class SMTPSizeExceededError extends SMTPNotSupportedError {
  override readonly code = 'ERR_SMTP_SIZE_EXCEEDED';
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`Message size ${size} exceeds the server's limit of ${limit} bytes (SIZE)`);
  }
}

/** Not connected, or the server closed the connection. */
export class SMTPServerDisconnected extends SMTPException {
  override readonly code: SMTPErrorCode = 'ERR_SMTP_SERVER_DISCONNECTED';
}

/** A step's timer expired; the connection was destroyed. */
export class SMTPTimeoutError extends SMTPServerDisconnected {
  override readonly code = 'ERR_SMTP_TIMEOUT';
  constructor(
    /** The step whose timer expired: `greeting`, `ehlo`, `mail`, `dataEnd`, … */
    readonly step: string,
    readonly timeoutMs: number,
  ) {
    super(`Timed out after ${timeoutMs} ms waiting for the server (${step})`);
  }
}

/** The pool is closing or was destroyed: it takes no new message. */
export class SMTPPoolClosedError extends SMTPServerDisconnected {
  override readonly code = 'ERR_SMTP_POOL_CLOSED';
}

/**
 * The server's certificate failed verification (untrusted, expired, wrong host name). Permanent:
 * trying again reaches the same certificate, so a pool does not retry it. `tlsCode` is Node's
 * `code` (`DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_TLS_CERT_ALTNAME_INVALID`, `CERT_HAS_EXPIRED`, …).
 */
export class SMTPCertificateError extends SMTPException {
  override readonly code = 'ERR_SMTP_TLS_CERTIFICATE';
  readonly tlsCode: string;
  constructor(message: string, options: { cause: Error & { code?: string } }) {
    super(message, options);
    this.tlsCode = options.cause.code ?? 'UNKNOWN';
  }
}

/** The server broke the protocol: a malformed or unsolicited reply, STARTTLS injection. */
export class SMTPProtocolError extends SMTPException {
  override readonly code: SMTPErrorCode = 'ERR_SMTP_PROTOCOL';
  /** The reply nothing had asked for, when that was the breach. */
  readonly reply?: Reply;
  constructor(message: string, options?: { cause?: unknown; reply?: Reply }) {
    super(message, options);
    if (options?.reply) this.reply = options.reply;
  }
}

/**
 * A reply broke one of the client's own bounds (`ReplyLimits`: a line over 8192 bytes, too many
 * lines or bytes in one reply). It is a failure of the connection, never the server's verdict:
 * the reply was not read, so after the final dot the message is possibly delivered. smtplib
 * raises `SMTPResponseException(500, "Line too long.")` here, which reads as a refusal.
 */
export class SMTPReplyLimitError extends SMTPProtocolError {
  override readonly code = 'ERR_SMTP_REPLY_LIMIT';
}

/**
 * An argument cannot be put on the wire (a CR, LF, NUL or other control
 * character, a malformed address, …). Raised before any byte is written.
 */
export class SMTPInvalidArgumentError extends SMTPException {
  override readonly code = 'ERR_SMTP_INVALID_ARGUMENT';
}

/** A reply with an error code; `smtpCode`/`smtpError` as in smtplib. */
export class SMTPResponseException extends SMTPException {
  override readonly code: SMTPErrorCode = 'ERR_SMTP_RESPONSE';
  readonly smtpCode: number;
  readonly smtpError: string;
  /** The whole reply, when the error came from one. */
  readonly reply?: Reply;
  /** The command that drew the reply, redacted. */
  readonly command?: string;

  constructor(
    smtpCode: number,
    smtpError: string,
    details: { reply?: Reply; command?: string | undefined; cause?: unknown } = {},
  ) {
    super(`${smtpCode} ${smtpError}`, { cause: details.cause });
    this.smtpCode = smtpCode;
    this.smtpError = smtpError;
    if (details.reply) this.reply = details.reply;
    if (details.command) this.command = details.command;
  }

  /**
   * Builds the error from the server's reply, keeping the reply and the command that drew it.
   *
   * @param reply the refusal.
   * @param command the command it answers, secrets redacted (`Command.debugText`).
   * @return an instance of the class it is called on (`SMTPDataError.fromReply(…)` is an `SMTPDataError`).
   */
  static fromReply<T extends SMTPResponseException>(
    this: new (code: number, message: string, details: { reply?: Reply; command?: string | undefined }) => T,
    reply: Reply,
    command?: string,
  ): T {
    return new this(reply.code, reply.message, { reply, command });
  }
}

/** MAIL FROM was refused. */
export class SMTPSenderRefused extends SMTPResponseException {
  override readonly code = 'ERR_SMTP_SENDER_REFUSED';
  constructor(
    smtpCode: number,
    smtpError: string,
    readonly sender: string,
    details: { reply?: Reply; command?: string | undefined } = {},
  ) {
    super(smtpCode, smtpError, details);
    this.message = `${smtpCode} ${smtpError} (sender ${sender})`;
  }
}

/** Every recipient was refused; `recipients` maps each one to its reply. */
export class SMTPRecipientsRefused extends SMTPException {
  override readonly code = 'ERR_SMTP_RECIPIENTS_REFUSED';
  constructor(readonly recipients: Record<string, Reply>) {
    const names = Object.keys(recipients);
    super(names.length ? `All recipients were refused: ${names.join(', ')}` : 'No recipients given');
  }
}

/** The server refused the message data. */
export class SMTPDataError extends SMTPResponseException {
  override readonly code = 'ERR_SMTP_DATA';
}

/** The server's greeting was not 220. */
export class SMTPConnectError extends SMTPResponseException {
  override readonly code = 'ERR_SMTP_CONNECT';
}

/** The server refused both EHLO and HELO. */
export class SMTPHeloError extends SMTPResponseException {
  override readonly code = 'ERR_SMTP_HELO';
}

/** Authentication failed (the server refused the credentials or the exchange). */
export class SMTPAuthenticationError extends SMTPResponseException {
  override readonly code = 'ERR_SMTP_AUTHENTICATION';
}

/**
 * The connection failed after the final dot (or the last BDAT) was written and
 * before its reply arrived: the server may have accepted the message (RFC 5321
 * §4.5.3.2, RFC 1047). Never retry such a message blindly.
 */
export class SMTPPossiblyDeliveredError extends SMTPException {
  override readonly code = 'ERR_SMTP_POSSIBLY_DELIVERED';
  // Not useless: it makes `cause` (what broke the connection) required.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
  }
}

/**
 * Whether the server said no (a reply decided it: smtplib's `SMTPResponseException` family, or
 * every recipient refused), so the connection's state is known. Matched by `code`, like the rest.
 */
export function isServerRefusal(err: unknown): boolean {
  const smtpCode = (err as { smtpCode?: unknown } | null)?.smtpCode;
  return (typeof smtpCode === 'number' && err instanceof Error) || hasCode(err, 'ERR_SMTP_RECIPIENTS_REFUSED');
}

/** True when `err` is one of ours with the given code. */
export function hasCode(err: unknown, code: SMTPErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
