import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { Observable, OperatorFunction, concatMap, map, throwError } from 'rxjs';
import { SMTPNotSupportedError, SMTPResponseException } from '../errors';
import { ehlo$ } from './ehlo';
import { Session, Step, forgetCapabilities, hasExtension } from './session';

/**
 * smtplib's `starttls()`: refuses before sending anything when the server did
 * not advertise STARTTLS; on 220 upgrades the socket (certificate and host name
 * verified unless `tls` says otherwise) and forgets every capability learnt in
 * plaintext (RFC 3207 §4.2). Any byte that arrived with or after the 220 aborts
 * the connection (STARTTLS command injection, CVE-2011-0411).
 *
 * ```
 * starttls$(s):  --STARTTLS→220--(handshake)--{session, secure}|
 * ```
 *
 * @param session a session that has greeted the server with EHLO.
 * @param tls TLS options merged over the session's.
 * @return the session with capabilities cleared, and the 220 reply.
 */
export function starttls$(session: Session, tls: TlsConnectionOptions = {}): Observable<Step> {
  if (!hasExtension(session, 'starttls')) {
    return throwError(() => new SMTPNotSupportedError('STARTTLS extension not supported by server.'));
  }
  return session.connection.starttls$({ ...session.tls, ...tls }, session.timeouts.command).pipe(
    map((reply) => {
      if (reply.code !== 220) throw SMTPResponseException.fromReply(reply, 'STARTTLS');
      return { session: { ...session, ...forgetCapabilities() }, reply };
    }),
  );
}

/**
 * The STARTTLS step as an operator: upgrade, then EHLO again over TLS.
 * With `{ required: false }` a server without STARTTLS is left in plaintext.
 */
export function starttls(
  options: { tls?: TlsConnectionOptions; required?: boolean } = {},
): OperatorFunction<Session, Session> {
  return concatMap((session: Session) => {
    if (options.required === false && !hasExtension(session, 'starttls')) return [session];
    return starttls$(session, options.tls).pipe(
      concatMap((step) => ehlo$(step.session)),
      map((step) => step.session),
    );
  });
}
