import { EMPTY, firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { SMTPConnectError, SMTPServerDisconnected, SMTPTimeoutError } from '../../lib/errors';
import { greeting } from '../../lib/session/greeting';
import { FakeServer } from '../helpers/fake-server';
import { expectSilentOnNever } from '../helpers/never';
import { sessionOn } from '../helpers/session';

describe('greeting', () => {
  let fake: FakeServer;
  afterEach(() => fake.close());

  it('emits the session with the 220 greeting', async () => {
    fake = await FakeServer.start({ greeting: '220-mx.test ESMTP\r\n220 hello' });
    const session = await firstValueFrom(sessionOn(fake).pipe(greeting()));
    expect(session.greeting).toMatchObject({ code: 220, message: 'mx.test ESMTP\nhello' });
  });

  it('errors with SMTPConnectError on any other code and closes the connection', async () => {
    fake = await FakeServer.start({ greeting: '199 not yet' });
    const err = await firstValueFrom(sessionOn(fake).pipe(greeting())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPConnectError);
    expect(err).toMatchObject({ smtpCode: 199, smtpError: 'not yet', code: 'ERR_SMTP_CONNECT' });
    await fake.closedSession();
  });

  it('errors with SMTPConnectError on a 554 refusal', async () => {
    fake = await FakeServer.start({ greeting: '554 5.7.1 go away' });
    await expect(firstValueFrom(sessionOn(fake).pipe(greeting()))).rejects.toMatchObject({ smtpCode: 554 });
  });

  it('errors with SMTPServerDisconnected when the server closes before greeting', async () => {
    fake = await FakeServer.start({ greeting: null });
    const session$ = sessionOn(fake).pipe(greeting());
    const result = firstValueFrom(session$).catch((e: unknown) => e);
    await fake.until(() => fake.sessions.length === 1);
    await fake.close();
    expect(await result).toBeInstanceOf(SMTPServerDisconnected);
  });

  it('times out a server that never greets, and releases the socket', async () => {
    fake = await FakeServer.start({ greeting: null });
    const err = await firstValueFrom(sessionOn(fake, { timeouts: { greeting: 50 } }).pipe(greeting())).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SMTPTimeoutError);
    expect(err).toMatchObject({ step: 'greeting' });
    await fake.closedSession();
  });

  it('destroys the socket when unsubscribed before the greeting', async () => {
    fake = await FakeServer.start({ greeting: null });
    const sub = sessionOn(fake).pipe(greeting()).subscribe();
    await fake.until(() => fake.sessions.length === 1);
    sub.unsubscribe();
    await fake.closedSession();
  });

  it('emits nothing for a source that never emits, and nothing for an empty one', async () => {
    await expectSilentOnNever(greeting());
    expect(await lastValueFrom(EMPTY.pipe(greeting(), toArray()))).toEqual([]);
    fake = await FakeServer.start();
  });
});
