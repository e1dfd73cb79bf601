import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { SMTPProtocolError, SMTPServerDisconnected, SMTPTimeoutError } from '../../lib/errors';
import { command } from '../../lib/wire/command';
import { FakeServer } from '../helpers/fake-server';
import { Held, greetingOf, hold } from '../helpers/connect';

describe('SmtpConnection', () => {
  let fake: FakeServer;
  let held: Held | undefined;

  afterEach(async () => {
    await held?.release();
    held = undefined;
    // Unset when a test failed before starting it.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    await fake?.close();
  });

  async function open(script: Parameters<typeof FakeServer.start>[0] = {}): Promise<Held> {
    fake = await FakeServer.start(script);
    held = await hold({ host: '127.0.0.1', port: fake.port });
    return held;
  }

  it('pairs the greeting with the connection itself', async () => {
    const { connection } = await open({ greeting: '220-fake.test\r\n220 welcome' });
    const greeting = await firstValueFrom(connection.greeting$);
    expect(greeting).toMatchObject({ code: 220, message: 'fake.test\nwelcome' });
  });

  it('writes a group of commands in one write and pairs the replies FIFO', async () => {
    const { connection } = await open({ holdRepliesUntil: 'DATA' });
    await greetingOf(held!);
    const group = [command('MAIL', ['FROM:<a@x.test>']), command('RCPT', ['TO:<b@x.test>']), command('DATA')];
    const replies = await lastValueFrom(connection.request$(group).pipe(toArray()));
    expect(replies.map((r) => r.code)).toEqual([250, 250, 354]);
    expect(fake.session.chunks).toHaveLength(1);
    expect(fake.session.chunks[0]?.toString()).toBe('MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n');
  });

  it('keeps pairing right when a request is unsubscribed before its reply', async () => {
    const { connection } = await open({ holdRepliesFrom: 'VRFY', holdRepliesUntil: 'RSET' });
    await greetingOf(held!);
    connection.allowPipelining(true);
    const abandoned = connection.request$(command('VRFY', ['x'])).subscribe();
    abandoned.unsubscribe();
    const reply = await firstValueFrom(connection.request$(command('RSET')));
    expect(reply.message).toBe('2.0.0 Ok');
    expect(connection.inFlight).toBe(0);
  });

  it('sends fire-and-forget commands whose replies show on replies$', async () => {
    const { connection } = await open();
    await greetingOf(held!);
    const next = firstValueFrom(connection.replies$);
    connection.commands.next(command('NOOP'));
    expect(await next).toMatchObject({ code: 250 });
  });

  it('treats a reply with no command pending as a protocol error and closes', async () => {
    const { connection } = await open({ handlers: { NOOP: '250 ok\r\n250 surprise' } });
    await greetingOf(held!);
    const done = lastValueFrom(connection.replies$).catch((e: unknown) => e);
    await firstValueFrom(connection.request$(command('NOOP')));
    expect(await done).toBeInstanceOf(SMTPProtocolError);
    await lastValueFrom(connection.closed$, { defaultValue: undefined });
    expect(held!.outcome()).toBeInstanceOf(SMTPProtocolError);
  });

  it('reports an unsolicited 421 as the server leaving', async () => {
    const { connection } = await open({ handlers: { NOOP: '250 ok\r\n421 4.3.2 shutting down' } });
    await greetingOf(held!);
    const done = lastValueFrom(connection.replies$).catch((e: unknown) => e);
    await firstValueFrom(connection.request$(command('NOOP')));
    const err = await done;
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(String(err)).toContain('421');
  });

  it('keeps commands queued behind EHLO in lockstep when the server turns out not to pipeline', async () => {
    // The first NOOP's reply waits for a turn of the event loop; the second NOOP must not come before it.
    let firstAnswered = false;
    let secondCameAfterFirstReply: boolean | undefined;
    let noops = 0;
    const { connection } = await open({
      extensions: ['SIZE 1000'],
      handlers: {
        NOOP: () => {
          if (++noops === 2) {
            secondCameAfterFirstReply = firstAnswered;
            return '250 2.0.0 second';
          }
          const answered = new Promise<void>((resolve) => setImmediate(resolve)).then(() => (firstAnswered = true));
          return { after: answered, reply: '250 2.0.0 first' };
        },
      },
    });
    await greetingOf(held!);
    // As the EHLO step does: it learns from the reply whether the server pipelines.
    const ehlo = firstValueFrom(connection.request$(command('EHLO', ['c.test'])));
    void ehlo.then(() => connection.allowPipelining(false));
    const first = firstValueFrom(connection.request$(command('NOOP')));
    const second = firstValueFrom(connection.request$(command('NOOP')));
    await expect(ehlo).resolves.toMatchObject({ code: 250 });
    await expect(first).resolves.toMatchObject({ message: '2.0.0 first' });
    await expect(second).resolves.toMatchObject({ message: '2.0.0 second' });
    expect(secondCameAfterFirstReply).toBe(true);
  });

  it('reads a 220 to an ordinary command as a reply: only STARTTLS has TLS (and bytes after it) to fear', async () => {
    const { connection } = await open({
      holdRepliesFrom: 'HELP',
      holdRepliesUntil: 'NOOP',
      handlers: { HELP: '220 2.0.0 help is here', NOOP: '250 2.0.0 Ok' },
    });
    await greetingOf(held!);
    const replies = await lastValueFrom(connection.request$([command('HELP'), command('NOOP')]).pipe(toArray()));
    expect(replies.map((r) => r.code)).toEqual([220, 250]);
    // Both replies came in one segment, as a pipelining server may send them.
    expect(fake.session.chunks).toHaveLength(1);
    expect(connection.open).toBe(true);
  });

  it('closes the connection on a reply line over 8192 bytes', async () => {
    const { connection } = await open({ handlers: { NOOP: `250 ${'x'.repeat(8189)}` } });
    await greetingOf(held!);
    const err = await firstValueFrom(connection.request$(command('NOOP'))).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_SMTP_REPLY_LIMIT', message: 'Line too long.' });
    await lastValueFrom(connection.closed$, { defaultValue: undefined });
    await fake.closedSession();
  });

  it('errors pending requests when the server closes early', async () => {
    const { connection } = await open({ handlers: { NOOP: { close: true } } });
    await greetingOf(held!);
    const err = await firstValueFrom(connection.request$(command('NOOP'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect((err as Error).message).toBe('Connection unexpectedly closed');
  });

  it('destroys the connection when a reply timer expires', async () => {
    const { connection } = await open({ handlers: { NOOP: { stall: true } } });
    await greetingOf(held!);
    const err = await firstValueFrom(connection.request$(command('NOOP'), { step: 'noop', timeout: 50 })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SMTPTimeoutError);
    expect(err).toMatchObject({ step: 'noop', code: 'ERR_SMTP_TIMEOUT' });
    expect(connection.open).toBe(false);
    await fake.closedSession();
  });

  it('times a reply from when it is awaited, even when an earlier reply had a longer timer', async () => {
    const { connection } = await open({ handlers: { NOOP: { stall: true } } });
    await greetingOf(held!);
    // The first reply's 10 s timer is still armed when the second reply, with 100 ms, becomes the one awaited.
    await firstValueFrom(connection.request$(command('RSET'), { step: 'rset', timeout: 10_000 }));
    const started = Date.now();
    const err = await firstValueFrom(connection.request$(command('NOOP'), { step: 'noop', timeout: 100 })).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ step: 'noop', code: 'ERR_SMTP_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('accepts a reply timeout longer than Node timers allow, without spinning', async () => {
    const { connection } = await open({ handlers: { NOOP: { delayMs: 50, reply: '250 2.0.0 Ok' } } });
    await greetingOf(held!);
    // Node runs a longer setTimeout after 1 ms, which would re-check the deadline every millisecond.
    const setTimeoutSpy = jest.spyOn(global, 'setTimeout');
    try {
      const reply = await firstValueFrom(
        connection.request$(command('NOOP'), { step: 'noop', timeout: 3_000_000_000 }),
      );
      expect(reply.code).toBe(250);
      const delays = setTimeoutSpy.mock.calls.map(([, ms]) => ms ?? 0);
      expect(delays.length).toBeGreaterThan(0);
      expect(delays.every((ms) => ms <= 2_147_483_647)).toBe(true);
    } finally {
      setTimeoutSpy.mockRestore();
    }
  });

  it('fails a request made after the connection closed, without writing', async () => {
    const { connection } = await open();
    await greetingOf(held!);
    connection.destroy();
    await expect(firstValueFrom(connection.request$(command('NOOP')))).rejects.toBeInstanceOf(SMTPServerDisconnected);
  });

  it('refuses body bytes once the connection has ended, with the disconnect: they would go nowhere', async () => {
    const { connection } = await open();
    await greetingOf(held!);
    connection.destroy();
    expect(() => connection.write(Buffer.from('Subject: late\r\n'))).toThrow(SMTPServerDisconnected);
    await fake.closedSession();
    expect(Buffer.concat(fake.session.bytes).toString()).not.toContain('Subject: late');
  });

  it('destroys the socket when connect$ is unsubscribed', async () => {
    await open({ handlers: { NOOP: { stall: true } } });
    await greetingOf(held!);
    await held!.release();
    held = undefined;
    await fake.closedSession();
    expect(fake.session.closed).toBe(true);
  });

  it('shows the connection, commands and replies on debug$, redacting secrets', async () => {
    const { connection } = await open({ handlers: { AUTH: '235 ok' } });
    const events: string[] = [];
    connection.debug$.subscribe((e) => events.push(`${e.direction} ${e.text}`));
    await greetingOf(held!);
    await firstValueFrom(connection.request$(command('AUTH', ['PLAIN', 'c2VjcmV0'], { secret: true })));
    // The connection was made before anyone could subscribe: its line comes first all the same.
    expect(events).toEqual([
      `info connected to 127.0.0.1:${fake.port}`,
      'receive 220 fake.test ESMTP',
      'send AUTH ****',
      'receive 235 ok',
    ]);
    expect(fake.text()).toContain('AUTH PLAIN c2VjcmV0');
  });
});
