import { firstValueFrom, lastValueFrom } from 'rxjs';
import { SMTPServerDisconnected, SMTPTimeoutError } from '../../lib/errors';
import { greeting } from '../../lib/session/greeting';
import { quit } from '../../lib/session/quit';
import { session$ } from '../../lib/session/open-session';
import { FakeServer } from '../helpers/fake-server';
import { sessionOn } from '../helpers/session';

describe('quit', () => {
  let fake: FakeServer;
  afterEach(() => fake.close());

  it('sends QUIT, reads the 221 and closes the socket gracefully', async () => {
    fake = await FakeServer.start();
    const session = await lastValueFrom(sessionOn(fake).pipe(greeting(), quit()));
    expect(fake.session.commands).toEqual(['QUIT']);
    expect(session.connection.open).toBe(false);
    await fake.closedSession();
  });

  it('still closes when the server answers QUIT with an error', async () => {
    fake = await FakeServer.start({ handlers: { QUIT: '500 what' } });
    const session = await lastValueFrom(sessionOn(fake).pipe(greeting(), quit()));
    expect(session.connection.open).toBe(false);
    await fake.closedSession();
  });

  it('errors with SMTPServerDisconnected when the server closes without a reply', async () => {
    fake = await FakeServer.start({ handlers: { QUIT: { close: true } } });
    await expect(lastValueFrom(sessionOn(fake).pipe(greeting(), quit()))).rejects.toBeInstanceOf(
      SMTPServerDisconnected,
    );
  });

  it('times out a server that never answers QUIT and releases the socket', async () => {
    fake = await FakeServer.start({ handlers: { QUIT: { stall: true } } });
    const err = await lastValueFrom(sessionOn(fake, { timeout: 50 }).pipe(greeting(), quit())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPTimeoutError);
    await fake.closedSession();
  });

  it('destroys the socket when unsubscribed while QUIT is in flight', async () => {
    fake = await FakeServer.start({ handlers: { QUIT: { stall: true } } });
    const sub = sessionOn(fake).pipe(greeting(), quit()).subscribe();
    await fake.received('QUIT');
    sub.unsubscribe();
    await fake.closedSession();
  });
});

describe('session$', () => {
  let fake: FakeServer;
  afterEach(() => fake.close());

  it('greets, and sends QUIT when unsubscribed while idle', async () => {
    fake = await FakeServer.start({ extensions: ['PIPELINING'] });
    const session = await firstValueFrom(session$({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' }));
    expect(session.doesEsmtp).toBe(true);
    const seen: string[] = [];
    session.connection.debug$.subscribe((e) => seen.push(e.text));
    await lastValueFrom(session.connection.closed$, { defaultValue: undefined });
    await fake.closedSession();
    expect(fake.session.commands).toEqual(['EHLO c.test', 'QUIT']);
    // A graceful close: the client stays to read the 221 before the socket goes.
    expect(seen).toContain('221 2.0.0 Bye');
  });

  it('does not start STARTTLS when the policy is never', async () => {
    fake = await FakeServer.start({ extensions: ['STARTTLS'] });
    await firstValueFrom(session$({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test', starttls: 'never' }));
    await fake.closedSession();
    expect(fake.session.commands).toEqual(['EHLO c.test', 'QUIT']);
  });

  it('errors when STARTTLS is required and not offered', async () => {
    fake = await FakeServer.start({ extensions: [] });
    await expect(
      firstValueFrom(session$({ host: '127.0.0.1', port: fake.port, starttls: 'required' })),
    ).rejects.toMatchObject({ code: 'ERR_SMTP_NOT_SUPPORTED' });
  });
});
