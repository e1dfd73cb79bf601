import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { session$ } from '../../lib/session/open-session';
import { SMTPPool } from '../../lib/pool/pool';
import { Logger } from '../../lib/transport/logger';
import { FakeServer } from '../helpers/fake-server';

/** A logger that keeps every call: [level, fields, text]. */
function recorder(options: { debug?: boolean } = {}): Logger & { calls: [string, Record<string, unknown>, string][] } {
  const calls: [string, Record<string, unknown>, string][] = [];
  const at = (level: string) => (fields: object, text: string) =>
    void calls.push([level, fields as Record<string, unknown>, text]);
  return {
    calls,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    ...(options.debug === false ? { isLevelEnabled: (level: string) => level !== 'debug' } : {}),
  };
}

describe('session$ logger', () => {
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });
  const base = (port: number) => ({
    host: '127.0.0.1',
    port,
    localHostname: 'client.test',
    starttls: 'never' as const,
    timeout: 2000,
  });

  it('logs the session ready, the dialogue at debug with AUTH redacted, and the close', async () => {
    fake = await FakeServer.start({ extensions: ['PIPELINING', 'AUTH PLAIN'], handlers: { AUTH: '235 2.7.0 ok' } });
    const logger = recorder();
    const subscription = session$({
      ...base(fake.port),
      auth: { user: 'tim', password: 'hunter2', allowPlaintextAuth: true },
      logger,
    }).subscribe({ error: () => undefined });
    await fake.until(() => logger.calls.some(([, , text]) => text === 'SMTP session ready'));
    subscription.unsubscribe();
    await fake.until(() => logger.calls.some(([, fields]) => fields.event === 'session-closed'));

    const ready = logger.calls.find(([, , text]) => text === 'SMTP session ready');
    expect(ready).toEqual([
      'info',
      {
        event: 'session-ready',
        host: '127.0.0.1',
        port: fake.port,
        tls: false,
        esmtp: true,
        extensions: ['pipelining', 'auth'],
      },
      'SMTP session ready',
    ]);
    const wire = logger.calls
      .filter(([level]) => level === 'debug')
      .map(([, fields]) => `${String(fields.direction)} ${String(fields.text)}`);
    expect(wire).toContain('send EHLO client.test');
    expect(wire).toContain('receive 235 2.7.0 ok');
    // The PLAIN response is base64 of "\0tim\0hunter2": neither it nor the password is logged.
    const everything = JSON.stringify(logger.calls);
    expect(everything).not.toContain(Buffer.from('\0tim\0hunter2').toString('base64'));
    expect(everything).not.toContain('hunter2');
    expect(logger.calls[logger.calls.length - 1]).toEqual([
      'info',
      { event: 'session-closed' },
      'SMTP connection closed',
    ]);
  });

  it('warns with the error code when the session fails', async () => {
    fake = await FakeServer.start({ greeting: '554 5.3.2 go away' });
    const logger = recorder();
    await expect(firstValueFrom(session$({ ...base(fake.port), logger }))).rejects.toMatchObject({
      code: 'ERR_SMTP_CONNECT',
    });
    expect(logger.calls.filter(([level]) => level === 'warn')).toEqual([
      [
        'warn',
        expect.objectContaining({ event: 'session-failed', port: fake.port, code: 'ERR_SMTP_CONNECT' }),
        'SMTP session failed',
      ],
    ]);
  });

  it('does not collect the dialogue when the logger says debug is off (pino isLevelEnabled)', async () => {
    fake = await FakeServer.start({});
    const logger = recorder({ debug: false });
    const subscription = session$({ ...base(fake.port), logger }).subscribe({ error: () => undefined });
    await fake.until(() => logger.calls.some(([, , text]) => text === 'SMTP session ready'));
    subscription.unsubscribe();
    expect(logger.calls.filter(([level]) => level === 'debug')).toEqual([]);
  });

  it("is not handed to a pool's connections: the pool logs their life cycle itself", async () => {
    fake = await FakeServer.start({});
    const logger = recorder();
    const pool = new SMTPPool({ ...base(fake.port), maxConnections: 1, logger });
    await lastValueFrom(pool.sendmail$('a@x.test', 'b@x.test', 'Hi.\r\n').pipe(toArray()));
    await pool.close();
    const texts = logger.calls.map(([, , text]) => text);
    expect(texts).toContain('SMTP pool: connection opened');
    expect(texts).not.toContain('SMTP session ready');
    expect(logger.calls.filter(([level]) => level === 'debug')).toEqual([]);
  });
});
