import { Observable, OperatorFunction, map, take } from 'rxjs';
import { SMTPConnectError } from '../errors';
import { Reply } from '../wire/reply';
import { Session, Step, stepOperator } from './session';

/**
 * Reads the server's greeting (RFC 5321 §3.1); anything but 220 errors with
 * `SMTPConnectError` and closes the connection, as smtplib's `connect()` does.
 *
 * ```
 * greeting$(s):  ----{session, reply: 220}|
 * ```
 *
 * @param session a session whose greeting has not been read.
 * @return the session with `greeting` set, and the greeting itself.
 */
export function greeting$(session: Session): Observable<Step> {
  const { connection } = session;
  return connection.greeting$.pipe(
    connection.timeoutAfter<Reply>('greeting', session.timeouts.greeting),
    take(1),
    map((reply) => {
      if (reply.code !== 220) {
        // Destroying with the error itself makes every stream on the connection end with it.
        const err = SMTPConnectError.fromReply(reply);
        connection.destroy(err);
        throw err;
      }
      return { session: { ...session, greeting: reply }, reply };
    }),
  );
}

/** The greeting step as an operator. */
export function greeting(): OperatorFunction<Session, Session> {
  return stepOperator(greeting$);
}
