import { createHmac } from 'node:crypto';
import { NEVER, firstValueFrom, lastValueFrom, of } from 'rxjs';
import {
  SMTPAuthenticationError,
  SMTPException,
  SMTPInsecureAuthError,
  SMTPNotSupportedError,
  SMTPTimeoutError,
  authPlain,
  scramSha256Mechanism,
} from '../../lib';
import { auth$, login$, oauth$ } from '../../lib/session/authenticate';
import { session$ } from '../../lib/session/open-session';
import { Session } from '../../lib/session/session';
import { testCa } from '../helpers/certs';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';
import { openSession } from '../helpers/session';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const PLAIN_VECTOR = 'AE1yLkFAc29tZXdoZXJlLmNvbQBzb21lcGFzc3dvcmQ='; // smtplib's test: Mr.A@somewhere.com / somepassword
const trusted = { allowPlaintextAuth: true } as const;

describe('AUTH', () => {
  let fake: FakeServer | undefined;
  let real: RealServer | undefined;
  let close: (() => void) | undefined;
  afterEach(async () => {
    close?.();
    await fake?.close();
    await real?.close();
    fake = real = close = undefined;
  });

  async function sessionWith(script: FakeScript): Promise<Session> {
    fake = await FakeServer.start(script);
    const opened = await openSession(fake.port, { timeout: 2000 });
    close = opened.close;
    fake.session.commands.length = 0;
    return opened.session;
  }

  describe('smtplib vectors', () => {
    it('sends PLAIN with an initial response', async () => {
      const session = await sessionWith({ extensions: ['AUTH PLAIN'], handlers: { AUTH: '235 2.7.0 ok' } });
      const step = await lastValueFrom(login$(session, 'Mr.A@somewhere.com', 'somepassword', trusted));
      expect(fake!.session.commands).toEqual([`AUTH PLAIN ${PLAIN_VECTOR}`]);
      expect(step.session.authenticatedAs).toBe('PLAIN');
    });

    it('answers CRAM-MD5 with user SP hex(HMAC-MD5(password, challenge))', async () => {
      const challenge = '<1896.697170952@postoffice.reston.mci.net>';
      const session = await sessionWith({
        extensions: ['AUTH CRAM-MD5'],
        handlers: { AUTH: `334 ${b64(challenge)}`, '*': '235 ok' },
      });
      await lastValueFrom(login$(session, 'tim', 'tanstaaftanstaaf', trusted));
      const digest = createHmac('md5', 'tanstaaftanstaaf').update(challenge).digest('hex');
      expect(digest).toBe('b913a602c7eda7a495b4e6e7334d3890');
      expect(fake!.session.commands).toEqual(['AUTH CRAM-MD5', b64(`tim ${digest}`)]);
    });

    it('answers the LOGIN prompts without reading them, with an initial response', async () => {
      const session = await sessionWith({
        extensions: ['AUTH LOGIN'],
        handlers: { AUTH: '334 UGFzc3dvcmQ6', '*': '235 ok' },
      });
      await lastValueFrom(login$(session, 'user', 'pass', trusted));
      expect(fake!.session.commands).toEqual([`AUTH LOGIN ${b64('user')}`, b64('pass')]);
    });

    it('answers the LOGIN prompts without an initial response', async () => {
      const replies = ['334 VXNlcm5hbWU6', '334 UGFzc3dvcmQ6', '235 ok'];
      const session = await sessionWith({
        extensions: ['AUTH LOGIN'],
        handlers: { AUTH: () => replies.shift(), '*': () => replies.shift() },
      });
      await lastValueFrom(login$(session, 'user', 'pass', { ...trusted, initialResponseOk: false }));
      expect(fake!.session.commands).toEqual(['AUTH LOGIN', b64('user'), b64('pass')]);
    });

    it('runs auth$ with smtplib-style authobjects', async () => {
      const session = await sessionWith({ extensions: ['AUTH PLAIN'], handlers: { AUTH: '235 ok' } });
      await lastValueFrom(
        auth$(session, { name: 'plain', authobject: authPlain('Mr.A@somewhere.com', 'somepassword') }, trusted),
      );
      expect(fake!.session.commands).toEqual([`AUTH PLAIN ${PLAIN_VECTOR}`]);
    });

    it('sends an empty initial response as "="', async () => {
      const session = await sessionWith({ extensions: ['AUTH X-EMPTY'], handlers: { AUTH: '235 ok' } });
      await lastValueFrom(auth$(session, { name: 'X-EMPTY', authobject: (c) => (c === null ? '' : 'x') }, trusted));
      expect(fake!.session.commands).toEqual(['AUTH X-EMPTY =']);
    });

    it("gives up on a server that keeps challenging (smtplib's infinite loop guard)", async () => {
      const session = await sessionWith({
        extensions: ['AUTH LOGIN'],
        handlers: { AUTH: '334 VXNlcm5hbWU6', '*': '334 VXNlcm5hbWU6' },
      });
      const err = await lastValueFrom(auth$(session, { name: 'LOGIN', authobject: () => 'again' }, trusted)).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SMTPException);
      expect(String(err)).toContain('Server AUTH mechanism infinite loop');
      expect(fake!.session.commands).toHaveLength(5);
    });

    it('treats 503 (already authenticated) as success', async () => {
      const session = await sessionWith({
        extensions: ['AUTH PLAIN'],
        handlers: { AUTH: '503 5.5.1 already authenticated' },
      });
      const step = await lastValueFrom(login$(session, 'u', 'p', trusted));
      expect(step.reply.code).toBe(503);
    });
  });

  describe('login$ policy', () => {
    it('moves to the next mechanism after a failure and raises the last error when all fail', async () => {
      const session = await sessionWith({
        extensions: ['AUTH LOGIN PLAIN CRAM-MD5'],
        handlers: { AUTH: '535 5.7.8 bad credentials', '*': '535 no' },
      });
      const err = await lastValueFrom(login$(session, 'u', 'p', trusted)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(fake!.session.commands.map((c) => c.split(' ').slice(0, 2).join(' '))).toEqual([
        'AUTH CRAM-MD5',
        'AUTH PLAIN',
        'AUTH LOGIN',
      ]);
    });

    it('stops at the first mechanism that succeeds', async () => {
      const session = await sessionWith({
        extensions: ['AUTH PLAIN CRAM-MD5'],
        handlers: { AUTH: (line) => (line.startsWith('AUTH CRAM-MD5') ? '535 no' : '235 ok') },
      });
      const step = await lastValueFrom(login$(session, 'u', 'p', trusted));
      expect(step.session.authenticatedAs).toBe('PLAIN');
    });

    it('compares mechanism names case-insensitively', async () => {
      const session = await sessionWith({ extensions: ['AUTH plain'], handlers: { AUTH: '235 ok' } });
      await lastValueFrom(login$(session, 'u', 'p', trusted));
      expect(fake!.session.commands[0]).toMatch(/^AUTH PLAIN /);
    });

    it('lets the caller pin a mechanism', async () => {
      const session = await sessionWith({
        extensions: ['AUTH PLAIN LOGIN CRAM-MD5'],
        handlers: { AUTH: '334 UGFzc3dvcmQ6', '*': '235 ok' },
      });
      await lastValueFrom(login$(session, 'u', 'p', { ...trusted, mechanisms: ['login'] }));
      expect(fake!.session.commands[0]).toBe(`AUTH LOGIN ${b64('u')}`);
    });

    it('errors with SMTPNotSupportedError when AUTH is not offered', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING'] });
      await expect(lastValueFrom(login$(session, 'u', 'p', trusted))).rejects.toBeInstanceOf(SMTPNotSupportedError);
      expect(fake!.session.commands).toEqual([]);
    });

    it('refuses to send credentials over plaintext unless allowed, sending nothing', async () => {
      const session = await sessionWith({ extensions: ['AUTH PLAIN'] });
      const err = await lastValueFrom(login$(session, 'u', 'p')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPInsecureAuthError);
      expect(String(err)).toMatch(/starttls/i);
      expect(fake!.session.commands).toEqual([]);
    });

    it('cancels with "*" when the authobject cannot answer', async () => {
      const session = await sessionWith({
        extensions: ['AUTH X'],
        handlers: { AUTH: '334 Y2hhbGxlbmdl', '*': '501 5.7.0 cancelled' },
      });
      const err = await lastValueFrom(
        auth$(session, { name: 'X', authobject: (c) => (c === null ? null : null) }, trusted),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(fake!.session.commands).toEqual(['AUTH X', '*']);
    });

    it('never shows the password in debug$ or in errors', async () => {
      const password = 'hunter2-very-secret';
      const session = await sessionWith({
        extensions: ['AUTH PLAIN LOGIN'],
        handlers: {
          AUTH: (l) => (l.startsWith('AUTH LOGIN') ? '334 UGFzc3dvcmQ6' : '535 5.7.8 no'),
          '*': '535 5.7.8 no',
        },
      });
      const seen: string[] = [];
      session.connection.debug$.subscribe((e) => seen.push(e.text));
      const err = await lastValueFrom(login$(session, 'user', password, trusted)).catch((e: unknown) => e);
      const everything = [...seen, String(err), JSON.stringify(err), (err as Error).stack ?? ''].join('\n');
      for (const secret of [password, b64(password), b64(`\0user\0${password}`)])
        expect(everything).not.toContain(secret);
      expect(seen).toContain('AUTH PLAIN ****');
    });
  });

  describe('SCRAM-SHA-256 (RFC 7677 §3 vector)', () => {
    const serverFirst = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
    const clientFinal =
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
    const serverFinal = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

    function scramServer(finalMessage: string): FakeScript {
      const replies = [`334 ${b64(finalMessage)}`, '235 2.7.0 ok'];
      return {
        extensions: ['AUTH SCRAM-SHA-256'],
        handlers: { AUTH: `334 ${b64(serverFirst)}`, '*': () => replies.shift() },
      };
    }

    it('runs the exchange byte for byte and verifies the server signature', async () => {
      const session = await sessionWith(scramServer(serverFinal));
      const sasl = scramSha256Mechanism({ user: 'user', password: 'pencil' }, { nonce: 'rOprNGfwEbeRWgbNEkqO' });
      const step = await lastValueFrom(auth$(session, sasl, trusted));
      expect(fake!.session.commands).toEqual([
        `AUTH SCRAM-SHA-256 ${b64('n,,n=user,r=rOprNGfwEbeRWgbNEkqO')}`,
        b64(clientFinal),
        '',
      ]);
      expect(step.session.authenticatedAs).toBe('SCRAM-SHA-256');
    });

    it('does not take a 503 in the middle of the exchange as success (the signature was never checked)', async () => {
      const session = await sessionWith({
        extensions: ['AUTH SCRAM-SHA-256'],
        handlers: { AUTH: `334 ${b64(serverFirst)}`, '*': '503 5.5.1 already authenticated' },
      });
      const sasl = scramSha256Mechanism({ user: 'user', password: 'pencil' }, { nonce: 'rOprNGfwEbeRWgbNEkqO' });
      await expect(lastValueFrom(auth$(session, sasl, trusted))).rejects.toBeInstanceOf(SMTPAuthenticationError);
    });

    it('fails, and cancels, when the server signature is tampered with', async () => {
      const session = await sessionWith(scramServer('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
      const sasl = scramSha256Mechanism({ user: 'user', password: 'pencil' }, { nonce: 'rOprNGfwEbeRWgbNEkqO' });
      const err = await lastValueFrom(auth$(session, sasl, trusted)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(fake!.session.commands.slice(-1)).toEqual(['*']);
    });
  });

  describe('OAuth', () => {
    it('uses OAUTHBEARER when the server offers it and not XOAUTH2', async () => {
      const session = await sessionWith({ extensions: ['AUTH OAUTHBEARER'], handlers: { AUTH: '235 2.7.0 ok' } });
      const step = await lastValueFrom(oauth$(session, { user: 'me@x.test', token: 'tok', ...trusted }));
      expect(step.session.authenticatedAs).toBe('OAUTHBEARER');
      expect(fake!.session.commands.at(-1)).toMatch(/^AUTH OAUTHBEARER /);
    });

    it('gives up on a token stream that never emits at the command deadline, sending no AUTH', async () => {
      fake = await FakeServer.start({ extensions: ['AUTH XOAUTH2'] });
      const opened = await openSession(fake.port, { timeouts: { command: 200 } });
      close = opened.close;
      fake.session.commands.length = 0;
      const err = await lastValueFrom(oauth$(opened.session, { user: 'me@x.test', token: NEVER, ...trusted })).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SMTPTimeoutError);
      expect(err).toMatchObject({ step: 'token', timeoutMs: 200 });
      expect(fake.session.commands).toEqual([]);
    });
  });

  describe('against smtp-server', () => {
    it("authenticates with XOAUTH2 and surfaces the server's JSON error on failure", async () => {
      real = await startSmtpServer({
        authMethods: ['XOAUTH2'],
        authOptional: false,
        onAuth(auth, _session, callback) {
          if (auth.accessToken === 'good-token') callback(null, { user: auth.username });
          else callback(null, { data: { status: '401', schemes: 'bearer', scope: 'mail' } });
        },
      });
      const connect = (token: string) =>
        firstValueFrom(
          session$({
            host: 'localhost',
            port: real!.port,
            tls: { ca: testCa },
            starttls: 'required',
            auth: { user: 'me@x.test', token: of(token) },
          }),
        );
      expect((await connect('good-token')).authenticatedAs).toBe('XOAUTH2');
      const err = await connect('bad-token').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(String(err)).toContain('"status":"401"');
    });

    it('runs AUTH inside session$ after STARTTLS, with a token stream', async () => {
      real = await startSmtpServer({
        authMethods: ['PLAIN', 'LOGIN'],
        onAuth(auth, _session, callback) {
          callback(auth.password === 'pw' ? null : new Error('bad'), { user: auth.username });
        },
      });
      const session = await firstValueFrom(
        session$({
          host: 'localhost',
          port: real.port,
          tls: { ca: testCa },
          starttls: 'required',
          auth: { user: 'u', password: 'pw' },
        }),
      );
      expect(session.authenticatedAs).toBe('PLAIN');
      expect(session.connection.secure).toBe(true);
    });
  });
});
