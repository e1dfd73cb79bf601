import { Observable, OperatorFunction, concatMap, map, of } from 'rxjs';
import { SMTPHeloError } from '../errors';
import { parseCapabilities } from '../wire/capabilities';
import { command } from '../wire/command';
import { isPositive } from '../wire/reply';
import { Session, Step, exchange$, forgetCapabilities, stepOperator } from './session';

/**
 * smtplib's `ehlo()`: sends EHLO (LHLO for LMTP, RFC 2033 §4.1) and, on 250,
 * records the capabilities. A refusal is returned, not thrown.
 *
 * @param session the session.
 * @param name the name to announce; default `session.localHostname`.
 */
export function sendEhlo$(session: Session, name?: string): Observable<Step> {
  const cmd = command(session.lmtp ? 'LHLO' : 'EHLO', [name || session.localHostname]);
  return exchange$(session, cmd).pipe(
    map((reply) => {
      const base = { ...session, ...forgetCapabilities(), ehloResp: reply.message };
      const esmtpFeatures = reply.code === 250 ? parseCapabilities(reply.message) : {};
      // RFC 2920: the connection groups and stacks writes only for a server that offered it.
      session.connection.allowPipelining(Object.prototype.hasOwnProperty.call(esmtpFeatures, 'pipelining'));
      if (reply.code !== 250) return { session: base, reply };
      return { session: { ...base, doesEsmtp: true, esmtpFeatures }, reply };
    }),
  );
}

/** smtplib's `helo()`: sends HELO and records the reply text. */
export function sendHelo$(session: Session, name?: string): Observable<Step> {
  const cmd = command('HELO', [name || session.localHostname]);
  return exchange$(session, cmd).pipe(map((reply) => ({ session: { ...session, heloResp: reply.message }, reply })));
}

/**
 * Greets the server: EHLO, then HELO when EHLO is refused (RFC 5321 §4.1.4);
 * LHLO alone for LMTP. Both refused → `SMTPHeloError`. This is smtplib's
 * `ehlo_or_helo_if_needed`, and does nothing when the session already greeted.
 *
 * ```
 * ehlo$(s):  --EHLO→500--HELO→250--{session}|
 * ```
 */
export function ehlo$(session: Session, name?: string): Observable<Step> {
  const done = session.heloResp ?? session.ehloResp;
  if (done !== null) return of({ session, reply: { code: 250, message: done, lines: done.split('\n') } });
  return sendEhlo$(session, name).pipe(
    concatMap((step) => {
      if (isPositive(step.reply)) return of(step);
      // RFC 2033 §4.1: an LMTP server has no HELO to fall back on. A 421 means the server is leaving.
      if (session.lmtp || step.reply.code === 421) return of(step);
      return sendHelo$(step.session, name);
    }),
    map((step) => {
      if (!isPositive(step.reply)) throw SMTPHeloError.fromReply(step.reply);
      return step;
    }),
  );
}

/** smtplib's test for `ehlo_or_helo_if_needed`: either greeting happened (even a refused EHLO sent by hand). */
export function isGreeted(session: Session): boolean {
  return (session.heloResp ?? session.ehloResp) !== null;
}

/** The greeting step as an operator: EHLO with HELO fallback (LHLO for LMTP). */
export function ehlo(name?: string): OperatorFunction<Session, Session> {
  return stepOperator(ehlo$, name);
}
