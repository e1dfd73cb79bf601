import { Subscription, firstValueFrom, lastValueFrom } from 'rxjs';
import { connect$ } from '../../lib/transport/connect';
import { SmtpConnection } from '../../lib/transport/connection';
import { ConnectOptions } from '../../lib/transport/options';
import { FakeScript, FakeServer } from './fake-server';

export interface Held {
  readonly connection: SmtpConnection;
  readonly subscription: Subscription;
  /** How connect$ ended: undefined while open, 'complete' or the error. */
  readonly outcome: () => unknown;
  /** Unsubscribes (destroying the socket unless a graceful close is under way) and waits for the close. */
  release(): Promise<void>;
}

/** Subscribes to connect$ and keeps the subscription, as a session would. */
export async function hold(options: ConnectOptions & { lmtp?: boolean }): Promise<Held> {
  let outcome: unknown;
  let resolve!: (c: SmtpConnection) => void;
  let reject!: (e: unknown) => void;
  const ready = new Promise<SmtpConnection>((res, rej) => ((resolve = res), (reject = rej)));
  const subscription = connect$(options).subscribe({
    next: resolve,
    error: (err: unknown) => {
      outcome = err;
      reject(err);
    },
    complete: () => (outcome = 'complete'),
  });
  const connection = await ready;
  return {
    connection,
    subscription,
    outcome: () => outcome,
    async release() {
      subscription.unsubscribe();
      await lastValueFrom(connection.closed$, { defaultValue: undefined });
    },
  };
}

/** The greeting of a held connection. */
export const greetingOf = (held: Held) => firstValueFrom(held.connection.greeting$);

/**
 * One fake server and a held, greeted connection on it per test, both torn down after the test
 * (register in a `describe`): `const bench = fakeConnections(); … const held = await bench.open(script);`.
 */
export function fakeConnections(): { readonly fake: FakeServer; open(script?: FakeScript): Promise<Held> } {
  let fake: FakeServer | undefined;
  let held: Held | undefined;
  afterEach(async () => {
    await held?.release();
    await fake?.close();
    fake = held = undefined;
  });
  return {
    get fake(): FakeServer {
      if (!fake) throw new Error('fakeConnections: open() a connection first');
      return fake;
    },
    async open(script: FakeScript = {}): Promise<Held> {
      fake = await FakeServer.start(script);
      held = await hold({ host: '127.0.0.1', port: fake.port });
      await greetingOf(held);
      return held;
    },
  };
}
