import { firstValueFrom } from 'rxjs';
import { SMTPHeloError, SMTPInvalidArgumentError, SMTPServerDisconnected, SMTPTimeoutError } from '../../lib/errors';
import { ehlo } from '../../lib/session/ehlo';
import { greeting } from '../../lib/session/greeting';
import { FakeServer } from '../helpers/fake-server';
import { sessionOn } from '../helpers/session';

describe('ehlo', () => {
  let fake: FakeServer;
  afterEach(() => fake.close());

  it('records the capabilities of a 250 reply', async () => {
    fake = await FakeServer.start({ extensions: ['PIPELINING', 'SIZE 1000', 'AUTH PLAIN LOGIN', 'STARTTLS'] });
    const session = await firstValueFrom(sessionOn(fake).pipe(greeting(), ehlo()));
    expect(fake.session.commands).toEqual(['EHLO client.test']);
    expect(session.doesEsmtp).toBe(true);
    expect(session.ehloResp).toBe('fake.test\nPIPELINING\nSIZE 1000\nAUTH PLAIN LOGIN\nSTARTTLS');
    expect(session.esmtpFeatures).toEqual({ pipelining: '', size: '1000', auth: ' PLAIN LOGIN', starttls: '' });
  });

  it('falls back to HELO when EHLO is refused', async () => {
    fake = await FakeServer.start({ handlers: { EHLO: '502 5.5.1 not here' } });
    const session = await firstValueFrom(sessionOn(fake).pipe(greeting(), ehlo()));
    expect(fake.session.commands).toEqual(['EHLO client.test', 'HELO client.test']);
    expect(session.doesEsmtp).toBe(false);
    expect(session.heloResp).toBe('fake.test');
    expect(session.ehloResp).toBe('5.5.1 not here');
    expect(session.esmtpFeatures).toEqual({});
  });

  it('errors with SMTPHeloError when HELO is refused too', async () => {
    fake = await FakeServer.start({ handlers: { EHLO: '500 no', HELO: '550 5.7.1 not you' } });
    const err = await firstValueFrom(sessionOn(fake).pipe(greeting(), ehlo())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPHeloError);
    expect(err).toMatchObject({ smtpCode: 550, code: 'ERR_SMTP_HELO' });
  });

  it('sends LHLO for LMTP and never falls back to HELO', async () => {
    fake = await FakeServer.start({ handlers: { LHLO: '500 no' } });
    const err = await firstValueFrom(sessionOn(fake, { lmtp: true }).pipe(greeting(), ehlo())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPHeloError);
    expect(fake.session.commands).toEqual(['LHLO client.test']);
  });

  it('refuses a local host name with CR/LF; the server receives nothing after the greeting', async () => {
    fake = await FakeServer.start();
    const session$ = sessionOn(fake, { localHostname: 'client\r\nMAIL FROM:<evil@x>' }).pipe(greeting(), ehlo());
    const err = await firstValueFrom(session$).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    await fake.closedSession();
    expect(fake.text()).toBe('');
  });

  it('errors with SMTPServerDisconnected when the server closes on EHLO', async () => {
    fake = await FakeServer.start({ handlers: { EHLO: { close: true } } });
    await expect(firstValueFrom(sessionOn(fake).pipe(greeting(), ehlo()))).rejects.toBeInstanceOf(
      SMTPServerDisconnected,
    );
  });

  it('times out a server that never answers EHLO', async () => {
    fake = await FakeServer.start({ handlers: { EHLO: { stall: true } } });
    const err = await firstValueFrom(sessionOn(fake, { timeout: 50 }).pipe(greeting(), ehlo())).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SMTPTimeoutError);
    expect(err).toMatchObject({ step: 'ehlo' });
    await fake.closedSession();
  });

  it('destroys the socket when unsubscribed while EHLO is in flight', async () => {
    fake = await FakeServer.start({ handlers: { EHLO: { stall: true } } });
    const sub = sessionOn(fake).pipe(greeting(), ehlo()).subscribe();
    await fake.received('EHLO');
    sub.unsubscribe();
    await fake.closedSession();
  });
});
