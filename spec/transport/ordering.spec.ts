import { Observable, firstValueFrom, lastValueFrom, timeout, toArray } from 'rxjs';
import { SMTP } from '../../lib/client/smtp';
import { session$, withSession$ } from '../../lib/session/open-session';
import { Session } from '../../lib/session/session';
import { SendEvent, sendmail$ } from '../../lib/session/sendmail';
import { ipOnly, nameOnly } from '../helpers/certs';
import { collect } from '../helpers/events';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { openSession } from '../helpers/session';
import { defined } from '../helpers/defined';

/** Every wait below has a deadline: a regression fails the test instead of hanging it. */
const DEADLINE = 5_000;
const within = <T>(source$: Observable<T>): Promise<T[]> => lastValueFrom(source$.pipe(timeout(DEADLINE), toArray()));
const outcome = <T>(source$: Observable<T>) => collect(source$.pipe(timeout(DEADLINE)));

/** A body that writes its first part, then waits for `finish()` before the rest: "mid-body" on demand. */
function gatedBody(): { body: AsyncIterable<Uint8Array>; finish: () => void } {
  let finish!: () => void;
  const gate = new Promise<void>((resolve) => (finish = resolve));
  async function* body(): AsyncGenerator<Uint8Array> {
    yield Buffer.from('Subject: gated\r\n\r\nfirst part\r\n');
    await gate;
    yield Buffer.from('second part\r\n');
  }
  return { body: body(), finish };
}

describe('the connection owns order and time', () => {
  let fake: FakeServer;
  let smtp: SMTP | undefined;
  let held: { session: Session; close(): void } | undefined;
  afterEach(async () => {
    smtp?.close();
    held?.close();
    smtp = held = undefined;
    await fake.close();
  });

  async function facade(script: FakeScript): Promise<SMTP> {
    fake = await FakeServer.start(script);
    smtp = new SMTP({
      host: '127.0.0.1',
      port: fake.port,
      localHostname: 'client.test',
      timeout: 2_000,
      debugStream: null,
    });
    await within(smtp.connect$());
    await within(smtp.ehlo$());
    return smtp;
  }

  async function sessionWith(script: FakeScript, timeoutMs = 2_000): Promise<Session> {
    fake = await FakeServer.start(script);
    held = await openSession(fake.port, { timeout: timeoutMs });
    return held.session;
  }

  describe('a command issued while a body is being written', () => {
    it.each([
      ['noop$', (s: SMTP) => s.noop$()],
      ['rset$', (s: SMTP) => s.rset$()],
      ['docmd$', (s: SMTP) => s.docmd$('NOOP')],
      ['quit$', (s: SMTP) => s.quit$()],
    ])('%s waits for the final dot: it is never written inside the message', async (_name, call) => {
      const client = await facade({});
      const { body, finish } = gatedBody();
      const sent = outcome(client.sendmail$('a@x.test', ['b@x.test'], body));
      await fake.until(() => fake.text().includes('first part'));
      const reply = firstValueFrom(call(client).pipe(timeout(DEADLINE)));
      finish();
      const { values, error } = await sent;
      expect(error).toBeUndefined();
      expect(values[values.length - 1]).toMatchObject({ type: 'sent', reply: { code: 250 } });
      expect(await reply).toMatchObject({ code: expect.any(Number) });
      expect(fake.session.messages[0]?.toString()).toBe('Subject: gated\r\n\r\nfirst part\r\nsecond part\r\n');
      // The command came after the dot, as a command of its own.
      const afterDot = fake.text().split('second part\r\n.\r\n')[1];
      expect(afterDot).toMatch(/^(NOOP|RSET|QUIT)\r\n/);
    });

    it('session$ unsubscribed mid-body destroys the connection at once: no QUIT inside the body, no wait for deadlines', async () => {
      fake = await FakeServer.start({});
      let ready: Session | undefined;
      const subscription = session$({ host: '127.0.0.1', port: fake.port, starttls: 'never' }).subscribe(
        (s) => (ready = s),
      );
      await fake.until(() => ready !== undefined);
      const session = defined(ready, 'a ready session');
      const { body } = gatedBody();
      const sent = outcome(sendmail$(session, 'a@x.test', 'b@x.test', body));
      await fake.until(() => fake.text().includes('first part'));
      subscription.unsubscribe();
      // Default deadlines are minutes long: the close must not wait for them.
      await fake.closedSession();
      const { error } = await sent;
      expect(error).toMatchObject({ code: 'ERR_SMTP_SERVER_DISCONNECTED' });
      expect(fake.text()).not.toContain('QUIT');
      expect(fake.session.messages).toHaveLength(0);
    });

    it('session$ unsubscribed while idle says QUIT', async () => {
      fake = await FakeServer.start({});
      let ready: Session | undefined;
      const subscription = session$({ host: '127.0.0.1', port: fake.port, starttls: 'never' }).subscribe(
        (s) => (ready = s),
      );
      await fake.until(() => ready !== undefined);
      subscription.unsubscribe();
      await fake.closedSession();
      expect(fake.session.commands.slice(-1)).toEqual(['QUIT']);
    });
  });

  describe('withSession$', () => {
    it.each([
      ['garbage', '250 2.0.0 Ok: queued\r\nnot a reply\r\n'],
      ['a 421 shutdown notice', '250 2.0.0 Ok: queued\r\n421 4.3.2 shutting down\r\n'],
    ])('reports sent when the final 250 comes with %s in the same segment, and completes', async (_name, raw) => {
      fake = await FakeServer.start({ handlers: { '.': { raw } } });
      const events = await within(
        withSession$({ host: '127.0.0.1', port: fake.port, starttls: 'never', timeout: 2_000 }, (s) =>
          sendmail$(s, 'a@x.test', 'b@x.test', 'x\r\n'),
        ),
      );
      expect(events[events.length - 1]).toMatchObject({ type: 'sent', reply: { code: 250 } });
      expect(fake.session.messages).toHaveLength(1);
    });
  });

  describe('the SMTP class with concurrent calls', () => {
    it('keeps what STARTTLS taught it when a noop$() ran beside it (no plaintext capabilities come back)', async () => {
      const client = await facade({ extensions: ['STARTTLS', 'AUTH PLAIN'], tls: ipOnly });
      // The NOOP waits for STARTTLS's turn, so it ends after it, holding the snapshot it began with.
      const tlsDone = within(client.starttls$({ tls: { ca: ipOnly.cert } }));
      const noop = within(client.noop$());
      await tlsDone;
      await noop;
      expect(fake.session.commands.slice(-2)).toEqual(['STARTTLS', 'NOOP']);
      expect(client.esmtpFeatures).toEqual({});
      expect(client.ehloResp).toBeNull();
    });
  });

  describe('a transaction left before its envelope is answered (no PIPELINING)', () => {
    const LOCKSTEP = ['SIZE 1000'];

    it('writes RSET only once the reply owed has arrived, then the next MAIL', async () => {
      const session = await sessionWith({
        extensions: LOCKSTEP,
        handlers: { MAIL: { delayMs: 200, reply: '250 2.1.0 Ok' } },
      });
      const left = sendmail$(session, 'a@x.test', 'b@x.test', 'x\r\n').subscribe();
      await fake.received('MAIL');
      left.unsubscribe();
      const next = await outcome(sendmail$(session, 'c@x.test', 'd@x.test', 'y\r\n'));
      expect(next.error).toBeUndefined();
      // Lockstep (RFC 5321 §4.1.1): the server saw each command only after answering the one before.
      expect(fake.session.commands).toEqual([
        'EHLO c.test',
        'MAIL FROM:<a@x.test> SIZE=3',
        'RSET',
        'MAIL FROM:<c@x.test> SIZE=3',
        'RCPT TO:<d@x.test>',
        'DATA',
      ]);
      expect(fake.session.chunks.map(String)).toContain('RSET\r\n');
    });

    it('gives the RSET a deadline: a server that never answers it fails the next transaction instead of hanging it', async () => {
      const session = await sessionWith(
        { extensions: LOCKSTEP, handlers: { RCPT: { delayMs: 100, reply: '250 2.1.5 Ok' }, RSET: { stall: true } } },
        300,
      );
      const left = sendmail$(session, 'a@x.test', 'b@x.test', 'x\r\n').subscribe();
      await fake.received('RCPT');
      left.unsubscribe();
      const next = await outcome(sendmail$(session, 'c@x.test', 'd@x.test', 'y\r\n'));
      expect(next.error).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'rset' });
      expect(fake.session.commands).not.toContain('MAIL FROM:<c@x.test> SIZE=3');
    });
  });

  describe('a pipelining server', () => {
    it('still gets a request queued behind an unanswered one a deadline of its own', async () => {
      const session = await sessionWith({ handlers: { NOOP: { stall: true } } }, 300);
      const first = outcome(session.connection.request$({ verb: 'NOOP', line: 'NOOP', debugText: 'NOOP' }));
      const second = outcome(session.connection.request$({ verb: 'HELP', line: 'HELP', debugText: 'HELP' }));
      expect((await first).error).toMatchObject({ code: 'ERR_SMTP_TIMEOUT' });
      expect((await second).error).toMatchObject({ code: 'ERR_SMTP_TIMEOUT' });
    });
  });

  describe('STARTTLS', () => {
    it('errors starttls$() promptly when bytes follow the 220 (command injection)', async () => {
      const client = await facade({
        extensions: ['STARTTLS'],
        tls: nameOnly,
        handlers: { STARTTLS: { starttls: true, inject: '250 injected\r\n' } },
      });
      const { error } = await outcome(client.starttls$({ tls: { ca: nameOnly.cert } }));
      expect(error).toMatchObject({ code: 'ERR_SMTP_PROTOCOL' });
      expect(String(error)).toMatch(/STARTTLS/);
    });

    it('checks the certificate against the IP address connected to: a certificate for localhost does not pass', async () => {
      const client = await facade({ extensions: ['STARTTLS'], tls: nameOnly });
      const { error } = await outcome(client.starttls$({ tls: { ca: nameOnly.cert } }));
      expect(error).toMatchObject({ code: 'ERR_SMTP_TLS_CERTIFICATE', tlsCode: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    });

    it('accepts a certificate that names the IP address connected to', async () => {
      const client = await facade({ extensions: ['STARTTLS'], tls: ipOnly });
      const [reply] = await within(client.starttls$({ tls: { ca: ipOnly.cert } }));
      expect(reply?.code).toBe(220);
      expect(client.session?.connection.secure).toBe(true);
    });
  });

  describe('a reply followed by garbage in the same segment', () => {
    it('still gives the reply to its command: the message was delivered, then the connection broke', async () => {
      const session = await sessionWith({ handlers: { '.': { raw: '250 2.0.0 Ok: queued\r\nnot a reply\r\n' } } });
      const { values, error } = await outcome(sendmail$(session, 'a@x.test', 'b@x.test', 'x\r\n'));
      expect(error).toBeUndefined();
      expect(values[values.length - 1]).toMatchObject({ type: 'sent', reply: { code: 250 } });
      expect(session.connection.failure).toMatchObject({ code: 'ERR_SMTP_PROTOCOL' });
    });
  });

  describe('docmd$', () => {
    it.each([[['XFOO', 'a b']], [['XFOO a b']], [['XFOO a', 'b']]])(
      'sends %j as "XFOO a b", as smtplib does',
      async (args) => {
        const client = await facade({});
        await within(client.docmd$(...(args as [string, string?])));
        expect(fake.session.commands.slice(-1)).toEqual(['XFOO a b']);
      },
    );

    it('still refuses CR, LF and NUL before anything is written', async () => {
      const client = await facade({});
      for (const bad of ['XFOO\r\nRSET', 'XFOO a\nb', 'XFOO \0']) {
        const { error } = await outcome(client.docmd$(bad));
        expect(error).toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
      }
      expect(fake.session.commands).toEqual(['EHLO client.test']);
    });
  });

  describe('AUTH', () => {
    it('never lets a credential the server echoes into the error or debug$', async () => {
      const client = await facade({
        extensions: ['AUTH PLAIN'],
        handlers: { AUTH: (line) => `535 5.7.8 ${line} rejected` },
      });
      const wire: string[] = [];
      client.setDebuglevel(1);
      client.debug$.subscribe((e) => wire.push(e.line));
      const secret = Buffer.from('\0user\0hunter22').toString('base64');
      const { error } = await outcome(
        client.login$('user', 'hunter22', { allowPlaintextAuth: true, mechanisms: ['PLAIN'] }),
      );
      expect(error).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION', smtpCode: 535 });
      expect(fake.session.commands).toContain(`AUTH PLAIN ${secret}`);
      const seen = JSON.stringify({ error, message: String(error), wire });
      expect(seen).not.toContain(secret);
      expect(seen).not.toContain('hunter22');
      expect(wire.some((l) => l.includes('535'))).toBe(true);
    });
  });
});

export type { SendEvent };
