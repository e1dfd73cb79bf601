import { firstValueFrom } from 'rxjs';
import {
  SMTPNotSupportedError,
  SMTPProtocolError,
  SMTPResponseException,
  SMTPServerDisconnected,
  SMTPTimeoutError,
} from '../../lib/errors';
import { session$ } from '../../lib/session/open-session';
import { ehlo } from '../../lib/session/ehlo';
import { greeting } from '../../lib/session/greeting';
import { starttls, starttls$ } from '../../lib/session/starttls';
import { Session, exchange$ } from '../../lib/session/session';
import { command } from '../../lib/wire/command';
import { otherCa, server as cert, testCa } from '../helpers/certs';
import { FakeServer } from '../helpers/fake-server';
import { sessionOn } from '../helpers/session';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';
import { Subscription, concatMap } from 'rxjs';

const TLS_EXTENSIONS = ['PIPELINING', 'STARTTLS'];

describe('starttls', () => {
  let fake: FakeServer | undefined;
  let real: RealServer | undefined;
  afterEach(async () => {
    await fake?.close();
    await real?.close();
    fake = real = undefined;
  });

  it('refuses with SMTPNotSupportedError when not advertised, sending nothing', async () => {
    fake = await FakeServer.start({ extensions: ['PIPELINING'] });
    const err = await firstValueFrom(sessionOn(fake).pipe(greeting(), ehlo(), starttls())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPNotSupportedError);
    expect((err as Error).message).toBe('STARTTLS extension not supported by server.');
    expect(fake.session.commands).toEqual(['EHLO client.test']);
  });

  it('upgrades, verifies the certificate, forgets capabilities and sends EHLO again', async () => {
    fake = await FakeServer.start({ extensions: TLS_EXTENSIONS, tls: cert });
    const session = await firstValueFrom(
      sessionOn(fake, { host: 'localhost', tls: { ca: testCa } }).pipe(greeting(), ehlo(), starttls()),
    );
    expect(session.connection.secure).toBe(true);
    expect(fake.session.secure).toBe(true);
    expect(fake.session.servername).toBe('localhost');
    expect(fake.session.commands).toEqual(['EHLO client.test', 'STARTTLS', 'EHLO client.test']);
    expect(session.esmtpFeatures).toHaveProperty('starttls');
  });

  it('stops the handshake clock once TLS is up: the connection outlives the STARTTLS timeout', async () => {
    fake = await FakeServer.start({ extensions: TLS_EXTENSIONS, tls: cert });
    // Held open until the end: unsubscribing from the pipeline closes its connection.
    let hold: Subscription | undefined;
    try {
      const session = await new Promise<Session>((resolve, reject) => {
        hold = sessionOn(fake!, { host: 'localhost', tls: { ca: testCa }, timeouts: { command: 500 } })
          .pipe(greeting(), ehlo(), starttls())
          .subscribe({ next: resolve, error: reject });
      });
      expect(session.connection.secure).toBe(true);
      // Three times the handshake's timeout: a clock left running has fired by then and closed the connection.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(session.connection.alive).toBe(true);
      const reply = await firstValueFrom(exchange$(session, command('NOOP')));
      expect(reply.code).toBe(250);
    } finally {
      hold?.unsubscribe();
    }
  });

  it('clears every capability in the step itself (RFC 3207 §4.2)', async () => {
    fake = await FakeServer.start({ extensions: TLS_EXTENSIONS, tls: cert });
    const step = await firstValueFrom(
      sessionOn(fake, { host: 'localhost', tls: { ca: testCa } }).pipe(
        greeting(),
        ehlo(),
        concatMap((s) => starttls$(s)),
      ),
    );
    expect(step.reply.code).toBe(220);
    expect(step.session).toMatchObject({ ehloResp: null, heloResp: null, doesEsmtp: false, esmtpFeatures: {} });
  });

  it('aborts when bytes follow the 220 in the same packet, and never sends EHLO in plaintext', async () => {
    fake = await FakeServer.start({
      extensions: TLS_EXTENSIONS,
      tls: cert,
      handlers: { STARTTLS: { starttls: true, inject: '250-injected\r\n250 AUTH PLAIN\r\n' } },
    });
    const err = await firstValueFrom(
      sessionOn(fake, { host: 'localhost', tls: { ca: testCa } }).pipe(greeting(), ehlo(), starttls()),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPProtocolError);
    expect(String(err)).toMatch(/STARTTLS/);
    await fake.closedSession();
    expect(fake.session.commands).toEqual(['EHLO client.test', 'STARTTLS']);
    expect(fake.text()).not.toMatch(/STARTTLS\r\n[\s\S]*EHLO/);
  });

  it('errors with SMTPResponseException when STARTTLS is refused', async () => {
    fake = await FakeServer.start({
      extensions: TLS_EXTENSIONS,
      handlers: { STARTTLS: '454 4.7.0 TLS not available' },
    });
    const err = await firstValueFrom(sessionOn(fake).pipe(greeting(), ehlo(), starttls())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPResponseException);
    expect(err).toMatchObject({ smtpCode: 454 });
  });

  it('errors with SMTPServerDisconnected when the server closes on STARTTLS', async () => {
    fake = await FakeServer.start({ extensions: TLS_EXTENSIONS, handlers: { STARTTLS: { close: true } } });
    await expect(firstValueFrom(sessionOn(fake).pipe(greeting(), ehlo(), starttls()))).rejects.toBeInstanceOf(
      SMTPServerDisconnected,
    );
  });

  it.each([
    ['never answers STARTTLS', { stall: true } as const, 50],
    ['says 220 and never starts the TLS handshake', { raw: '220 go ahead\r\n' }, 100],
  ])('times out a server that %s', async (_name, handler, ms) => {
    fake = await FakeServer.start({ extensions: TLS_EXTENSIONS, handlers: { STARTTLS: handler } });
    const err = await firstValueFrom(
      sessionOn(fake, { timeouts: { command: ms } }).pipe(greeting(), ehlo(), starttls()),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPTimeoutError);
    expect(err).toMatchObject({ step: 'starttls' });
    await fake.closedSession();
  });

  it('destroys the socket when unsubscribed during STARTTLS', async () => {
    fake = await FakeServer.start({ extensions: TLS_EXTENSIONS, handlers: { STARTTLS: { stall: true } } });
    const sub = sessionOn(fake).pipe(greeting(), ehlo(), starttls()).subscribe();
    await fake.received('STARTTLS');
    sub.unsubscribe();
    await fake.closedSession();
  });

  it('upgrades against smtp-server with the test CA', async () => {
    real = await startSmtpServer();
    const session = await firstValueFrom(
      session$({ host: 'localhost', port: real.port, tls: { ca: testCa }, starttls: 'required' }),
    );
    expect(session.connection.secure).toBe(true);
    expect(session.doesEsmtp).toBe(true);
    expect(session.esmtpFeatures).not.toHaveProperty('starttls');
  });

  it('fails the handshake against smtp-server when the CA does not match', async () => {
    real = await startSmtpServer();
    const err = await firstValueFrom(
      session$({ host: 'localhost', port: real.port, tls: { ca: otherCa }, starttls: 'required' }),
    ).catch((e: unknown) => e);
    // A certificate that fails is permanent, not a lost connection a pool would retry.
    expect(err).toMatchObject({ code: 'ERR_SMTP_TLS_CERTIFICATE', tlsCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    expect(String(err)).toMatch(/certificate/i);
  });
});
