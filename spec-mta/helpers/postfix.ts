import { Observable } from 'rxjs';
import { Body, MailOptions, Recipient, SendEvent, Session, SessionConfig, sendmail$, withSession$ } from '../../lib';
import { CLIENT_TIMEOUT, outcome, sourceAddress } from './client';
import { env, tls } from './env';

/** A session config for Postfix's plain port (STARTTLS with the run's CA), from a source address of its own. */
export function plainPort(
  overrides: Omit<SessionConfig, 'sourceAddress'> = {},
): SessionConfig & { sourceAddress: { host: string } } {
  return {
    host: env.host,
    port: env.postfix.plain,
    tls,
    localHostname: 'client.rx-smtp.test',
    timeout: CLIENT_TIMEOUT,
    ...overrides,
    sourceAddress: sourceAddress(),
  };
}

/** One message over one session (QUIT at the end): its events and error. */
export function sendOnce(
  config: SessionConfig,
  from: string,
  to: readonly (string | Recipient)[],
  body: Body,
  mailOptions: MailOptions = {},
) {
  return outcome(withSession$(config, (session) => sendmail$(session, from, to, body, mailOptions)));
}

/** Runs `work` on one session and keeps the session snapshot it ran on. */
export function onSession<T>(config: SessionConfig, work: (session: Session) => Observable<T>) {
  let used: Session | undefined;
  const result = outcome(
    withSession$(config, (session) => {
      used = session;
      return work(session);
    }),
  );
  return result.then((r) => ({ ...r, session: used }));
}

/** Line ends canonicalised to CRLF and a final CRLF: what the client must put on the wire (without dot-stuffing). */
export function canonical(text: string | Buffer): Buffer {
  const s = Buffer.isBuffer(text) ? text.toString('latin1') : Buffer.from(text, 'utf8').toString('latin1');
  const crlf = s.replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(crlf.endsWith('\r\n') ? crlf : `${crlf}\r\n`, 'latin1');
}

export type { SendEvent };
