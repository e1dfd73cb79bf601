import { Observable, OperatorFunction, concatMap, finalize, last, map, merge } from 'rxjs';
import { Session, Step, forgetCapabilities } from './session';

/**
 * Sends QUIT, then closes the connection (RFC 5321 §4.1.1.10); the reply is
 * whatever the server said, and the socket is released either way. QUIT takes its
 * turn on the connection: it goes after a body being written, never inside it.
 *
 * ```
 * quit$(s):  --QUIT→221--{session}|   (socket closed)
 * ```
 */
export function quit$(session: Session): Observable<Step> {
  const { connection } = session;
  return connection.quit$({ timeout: session.timeouts.command }).pipe(
    map((reply) => ({ session: { ...session, ...forgetCapabilities() }, reply })),
    finalize(() => connection.end()),
  );
}

/** The QUIT step as an operator: emits the session once the socket is closed. */
export function quit(): OperatorFunction<Session, Session> {
  return concatMap((session: Session) =>
    merge(quit$(session).pipe(map((step) => step.session)), session.connection.closed$.pipe(map(() => session))).pipe(
      last(),
    ),
  );
}
