import { Observable, map } from 'rxjs';
import { SessionConfig, session$ } from '../../lib/session/open-session';
import { Session, SessionOptions, newSession } from '../../lib/session/session';
import { connect$ } from '../../lib/transport/connect';
import { FakeScript, FakeServer } from './fake-server';

/** A fresh session (greeting not read) on the fake, as a cold Observable. */
export function sessionOn(fake: FakeServer, options: SessionOptions & { host?: string } = {}): Observable<Session> {
  return connect$({ host: options.host ?? '127.0.0.1', port: fake.port }).pipe(
    map((connection) => newSession(connection, { localHostname: 'client.test', ...options })),
  );
}

/** A ready session (greeted, no TLS) on 127.0.0.1:port, kept open until `close()` (which sends QUIT). */
export function openSession(
  port: number,
  options: Partial<SessionConfig> = {},
): Promise<{ session: Session; close: () => void }> {
  return new Promise((resolve, reject) => {
    const config: SessionConfig = {
      host: '127.0.0.1',
      port,
      localHostname: 'c.test',
      starttls: 'never',
      timeout: 5000,
      ...options,
    };
    const subscription = session$(config).subscribe({
      next: (session) => resolve({ session, close: () => subscription.unsubscribe() }),
      error: reject,
    });
  });
}

/**
 * One fake server and a ready session on it per test, both torn down after the test (register in a
 * `describe`): `const bench = fakeSessions(); … const session = await bench.open(script);`.
 */
export function fakeSessions(options: Partial<SessionConfig> = { timeout: 2000 }): {
  readonly fake: FakeServer;
  open(script: FakeScript): Promise<Session>;
} {
  let fake: FakeServer | undefined;
  let held: { close: () => void } | undefined;
  afterEach(async () => {
    held?.close();
    await fake?.close();
    fake = held = undefined;
  });
  return {
    get fake(): FakeServer {
      if (!fake) throw new Error('fakeSessions: open() a session first');
      return fake;
    },
    async open(script: FakeScript): Promise<Session> {
      fake = await FakeServer.start(script);
      const opened = await openSession(fake.port, options);
      held = opened;
      return opened.session;
    },
  };
}
