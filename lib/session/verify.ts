import { Observable, of } from 'rxjs';
import { SMTPProtocolError } from '../errors';
import { Reply } from '../wire/reply';
import { SessionConfig, withSession$ } from './open-session';
import { Session } from './session';

/** What `verify$` found out about the server, once every step of the session succeeded. */
export interface VerifyReport {
  /** The server's greeting. */
  readonly greeting: Reply;
  /** The EHLO keywords (lower-case) and their parameters, as the server listed them last (over TLS, after STARTTLS). */
  readonly capabilities: Readonly<Record<string, string>>;
  /** Whether the connection was encrypted (implicit TLS or STARTTLS). */
  readonly secure: boolean;
  /** Whether AUTH succeeded (false when the config has no credentials). */
  readonly authenticated: boolean;
}

/**
 * nodemailer's `verify()`, for an application's start-up: connects, reads the greeting, EHLO,
 * STARTTLS as `config.starttls` says, AUTH when `config.auth` is given, then QUIT. Emits what it
 * learnt once, and completes after the server answered QUIT. It sends no mail: a server may still
 * refuse a sender or a recipient later.
 *
 * (`SMTP.verify$(address)` is another thing: smtplib's `verify()`, the VRFY command.)
 *
 * ```
 * verify$(c):  --connect--220--EHLO--STARTTLS--EHLO--AUTH--r--QUIT→221|
 * ```
 *
 * @param config where to connect, TLS policy and credentials, as for `session$`.
 * @return the report, then completion; errors as the failing step raises them
 *   (`SMTPConnectError`, `SMTPCertificateError`, `SMTPNotSupportedError` for a STARTTLS that is
 *   required and not offered, `SMTPAuthenticationError` for refused credentials, …).
 *
 * @example
 * const report = await lastValueFrom(verify$({ host: 'smtp.example.com', port: 587, starttls: 'required', auth }));
 */
export function verify$(config: SessionConfig): Observable<VerifyReport> {
  return withSession$(config, (session) => of(reportOf(session)));
}

function reportOf(session: Session): VerifyReport {
  const { greeting } = session;
  // The greeting step has run: session$ only emits sessions past it.
  if (!greeting) throw new SMTPProtocolError('verify$: the session has no greeting');
  return {
    greeting,
    capabilities: session.esmtpFeatures,
    secure: session.connection.secure,
    authenticated: session.authenticatedAs !== null,
  };
}
