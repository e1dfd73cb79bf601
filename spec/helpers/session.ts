import { Observable, map } from 'rxjs';
import { Session, SessionOptions, newSession } from '../../lib/session/session';
import { connect$ } from '../../lib/transport/connect';
import { FakeServer } from './fake-server';

/** A fresh session (greeting not read) on the fake, as a cold Observable. */
export function sessionOn(fake: FakeServer, options: SessionOptions & { host?: string } = {}): Observable<Session> {
  return connect$({ host: options.host ?? '127.0.0.1', port: fake.port }).pipe(
    map((connection) => newSession(connection, { localHostname: 'client.test', ...options })),
  );
}
