import * as os from 'node:os';
import * as path from 'node:path';
import { firstValueFrom, lastValueFrom } from 'rxjs';
import { SMTPCertificateError, SMTPException, SMTPProtocolError, SMTPServerDisconnected } from '../../lib/errors';
import { connect$ } from '../../lib/transport/connect';
import type { DebugEvent } from '../../lib/transport/debug';
import { command } from '../../lib/wire/command';
import { testCa, server } from '../helpers/certs';
import { Held, fakeConnections } from '../helpers/connect';
import { FakeServer, FakeScript } from '../helpers/fake-server';

/*
 * The texts lib/transport/ puts in the errors and debug events users read, each at the point it
 * reaches them (mutation sweep: a message emptied must fail a test).
 */

describe('texts of lib/transport errors', () => {
  const bench = fakeConnections();
  const open = (script: FakeScript): Promise<Held> => bench.open(script);

  /** The error `source` ends with. */
  const errorOf = (source: Promise<unknown>) =>
    source.then(
      () => new Error('expected an error'),
      (e: unknown) => e,
    );

  it('names the endpoint it could not connect to, host and port', async () => {
    const closed = await FakeServer.start();
    const { port } = closed;
    await closed.close();
    const err = (await errorOf(firstValueFrom(connect$({ host: '127.0.0.1', port })))) as Error;
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(err.message).toMatch(new RegExp(`^Could not connect to 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
  });

  it('names the Unix socket it could not connect to', async () => {
    const socket = path.join(os.tmpdir(), `rx-smtp-absent-${process.pid}.sock`);
    const err = (await errorOf(firstValueFrom(connect$({ path: socket })))) as Error;
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(err.message).toMatch(new RegExp(`^Could not connect to ${socket.replace(/[.]/g, '\\.')}: connect ENOENT`));
  });

  it('says the client closed the connection to a request it destroyed', async () => {
    let arrived!: () => void;
    const noopArrived = new Promise<void>((resolve) => (arrived = resolve));
    const { connection } = await open({
      handlers: {
        NOOP: () => {
          arrived();
          return { stall: true };
        },
      },
    });
    const pending = errorOf(firstValueFrom(connection.request$(command('NOOP'))));
    await noopArrived;
    connection.destroy();
    const err = (await pending) as Error;
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(err.message).toBe('Connection closed by the client');
  });

  it('quotes an unsolicited 421 as the server closing the connection', async () => {
    const { connection } = await open({ handlers: { NOOP: '250 ok\r\n421 4.3.2 shutting down' } });
    const done = errorOf(lastValueFrom(connection.replies$));
    await firstValueFrom(connection.request$(command('NOOP')));
    const err = (await done) as Error;
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(err.message).toBe('Server closing the connection: 421 4.3.2 shutting down');
  });

  it('quotes any other unsolicited reply as a protocol error', async () => {
    const { connection } = await open({ handlers: { NOOP: '250 ok\r\n250 surprise' } });
    const done = errorOf(lastValueFrom(connection.replies$));
    await firstValueFrom(connection.request$(command('NOOP')));
    const err = (await done) as Error;
    expect(err).toBeInstanceOf(SMTPProtocolError);
    expect(err.message).toBe('Unsolicited reply from the server: 250 surprise');
  });

  it('says "Connection error" when the server resets the connection under a request', async () => {
    const { connection } = await open({ handlers: { NOOP: { close: true, reset: true } } });
    const err = (await errorOf(firstValueFrom(connection.request$(command('NOOP'))))) as Error;
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(err.message).toMatch(/^Connection error: .*ECONNRESET/);
  });

  it('refuses a write made after the turn was given back, saying so', async () => {
    const { connection } = await open({});
    const err = await errorOf(
      lastValueFrom(
        connection.withTurn$((turn) => {
          turn.release();
          turn.write(Buffer.from('NOOP\r\n'));
          throw new Error('the write went through');
        }),
      ),
    );
    expect(err).toBeInstanceOf(SMTPException);
    expect((err as Error).message).toBe('rx-smtp: a write after the turn was released');
    expect(bench.fake.session.bytes.length).toBe(0);
  });

  it('reports the TLS version it established in debug$', async () => {
    const { connection } = await open({ tls: server });
    const events: DebugEvent[] = [];
    connection.debug$.subscribe((event) => events.push(event));
    const reply = await firstValueFrom(connection.starttls$({ ca: testCa, servername: 'localhost' }, 5000));
    expect(reply.code).toBe(220);
    expect(connection.secure).toBe(true);
    const info = events.filter((e) => e.direction === 'info').map((e) => e.text);
    expect(info).toContainEqual(expect.stringMatching(/^TLS established \(TLSv1\.[23]\)$/));
  });

  it('says "connected to", "closing" and then "closed" in debug$ when the client ends the connection', async () => {
    const { connection } = await open({});
    const info: string[] = [];
    connection.debug$.subscribe((e) => {
      if (e.direction === 'info') info.push(e.text);
    });
    connection.end();
    await lastValueFrom(connection.closed$, { defaultValue: undefined });
    expect(info).toEqual([`connected to 127.0.0.1:${bench.fake.port}`, 'closing', 'closed']);
  });

  it('calls a certificate that fails verification at STARTTLS a certificate error, with the context', async () => {
    const { connection } = await open({ tls: server });
    const err = (await errorOf(firstValueFrom(connection.starttls$({ servername: 'localhost' }, 5000)))) as Error;
    expect(err).toBeInstanceOf(SMTPCertificateError);
    expect(err.message).toMatch(/^Connection error: the server's certificate failed verification: /);
  });
});
