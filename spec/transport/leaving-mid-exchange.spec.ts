import { Observable, from, lastValueFrom, timeout, toArray } from 'rxjs';
import { SaslMechanism } from '../../lib/auth/mechanism';
import { SMTPServerDisconnected } from '../../lib/errors';
import { auth$, login$ } from '../../lib/session/authenticate';
import { data$ } from '../../lib/session/mail';
import { sendmail$ } from '../../lib/session/sendmail';
import { Session } from '../../lib/session/session';
import { DebugEvent } from '../../lib/transport/debug';
import { command } from '../../lib/wire/command';
import { testCa } from '../helpers/certs';
import { collect } from '../helpers/events';
import { FakeScript } from '../helpers/fake-server';
import { fakeSessions } from '../helpers/session';

/**
 * A caller that leaves an exchange half-said (a `timeout()` around `data$`, `auth$`, `starttls$`),
 * or work that throws while it is being built, must leave the connection either closed or ready
 * for the next command: never a later command read as a message line or a SASL response, and
 * never a write channel nobody will give back.
 */

/** Every wait below has a deadline: a regression fails the test instead of hanging it. */
const DEADLINE = 5_000;
const outcome = <T>(source$: Observable<T>) => collect(source$.pipe(timeout(DEADLINE)));
const within = <T>(source$: Observable<T>): Promise<T[]> => lastValueFrom(source$.pipe(timeout(DEADLINE), toArray()));
const NOOP = command('NOOP');

/** A promise and the function that settles it: a reply the fake holds until the test says so. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe('leaving an exchange half-said', () => {
  const bench = fakeSessions({ timeout: 2_000 });
  const sessionWith = (script: FakeScript): Promise<Session> => bench.open(script);

  it('data$ left before DATA is answered closes the connection: the next command is not written into a message', async () => {
    const reply = gate();
    const session = await sessionWith({ handlers: { DATA: { after: reply.opened, reply: '354 go ahead' } } });
    const left = data$(session, 'Subject: left\r\n\r\nbody\r\n').subscribe({ error: () => undefined });
    await bench.fake.received('DATA');
    left.unsubscribe();
    reply.open();

    const { error } = await outcome(session.connection.request$(NOOP));
    expect(error).toBeInstanceOf(SMTPServerDisconnected);
    await bench.fake.closedSession();
    expect(bench.fake.text()).not.toContain('NOOP');
  });

  it('auth$ left while the server owes its challenge closes the connection: the next command is not read as a SASL response', async () => {
    const challenge = gate();
    const session = await sessionWith({
      extensions: ['AUTH LOGIN'],
      handlers: { AUTH: { after: challenge.opened, reply: '334 VXNlcm5hbWU6' }, '*': '235 2.7.0 ok' },
    });
    const login = auth$(session, { name: 'LOGIN', authobject: () => 'user' }, { allowPlaintextAuth: true });
    const left = login.subscribe({ error: () => undefined });
    await bench.fake.received('AUTH');
    left.unsubscribe();
    challenge.open();

    const { error } = await outcome(session.connection.request$(NOOP));
    expect(error).toBeInstanceOf(SMTPServerDisconnected);
    await bench.fake.closedSession();
    expect(bench.fake.text()).not.toContain('NOOP');
  });

  describe('work that throws while it is being built', () => {
    const throwing: SaslMechanism = {
      name: 'X-THROWS',
      initialResponse: () => {
        throw new Error('no token to hand');
      },
      respond: () => '',
      finish: () => undefined,
    };

    it('errors that call and gives the connection back, when the channel was free', async () => {
      const session = await sessionWith({});
      const { error } = await outcome(auth$(session, throwing, { allowPlaintextAuth: true }));
      expect(error).toMatchObject({ message: 'no token to hand' });
      const [noop] = await within(session.connection.request$(NOOP));
      expect(noop?.code).toBe(250);
      expect(bench.fake.session.commands).toEqual(['EHLO c.test', 'NOOP']);
    });

    it('errors that call, not the one that handed it the channel, when it had to wait', async () => {
      const noopReply = gate();
      const session = await sessionWith({
        extensions: [],
        handlers: { NOOP: { after: noopReply.opened, reply: '250 ok' } },
      });
      // Without PIPELINING the first NOOP holds the channel until its reply: auth$ waits behind it.
      const first = outcome(session.connection.request$(NOOP));
      const thrown = outcome(auth$(session, throwing, { allowPlaintextAuth: true }));
      const after = outcome(session.connection.request$(NOOP));
      await bench.fake.received('NOOP');
      noopReply.open();

      expect((await first).error).toBeUndefined();
      expect((await thrown).error).toMatchObject({ message: 'no token to hand' });
      const { values, error } = await after;
      expect(error).toBeUndefined();
      expect(values.map((r) => r.code)).toEqual([250]);
      expect(bench.fake.session.commands.filter((c) => c === 'NOOP')).toHaveLength(2);
    });
  });

  it('starttls$ left mid-handshake closes the connection and gives the channel back: the next call fails at once', async () => {
    // The fake says 220 and then never speaks TLS: the client's handshake stays under way.
    const session = await sessionWith({ extensions: ['STARTTLS'], handlers: { STARTTLS: '220 2.0.0 go ahead' } });
    const left = session.connection.starttls$({ ca: testCa }, 60_000).subscribe({ error: () => undefined });
    // The ClientHello (a TLS handshake record, 0x16) is on the wire: the upgrade is under way.
    await bench.fake.until(() => {
      const text = bench.fake.text();
      const after = text.indexOf('STARTTLS\r\n');
      return after >= 0 && text.charCodeAt(after + 'STARTTLS\r\n'.length) === 0x16;
    });
    left.unsubscribe();

    const { error } = await outcome(session.connection.request$(NOOP));
    expect(error).toBeInstanceOf(SMTPServerDisconnected);
    await bench.fake.closedSession();
  });

  describe('a credential echoed back', () => {
    const PLAIN_SECRET = Buffer.from('\0user\0hunter22').toString('base64');

    /** What the run's error, debug$ and `after` (once the run ended) show, as one string. */
    async function seenIn(
      session: Session,
      run: Observable<unknown>,
      after: () => Promise<{ error?: unknown }>,
    ): Promise<string> {
      const events: DebugEvent[] = [];
      const watching = session.connection.debug$.subscribe((e) => events.push(e));
      const { error } = await outcome(run);
      const then = await after();
      watching.unsubscribe();
      const wire = events.map((e) => e.text);
      return JSON.stringify({ error, message: String(error), after: String(then.error), wire });
    }

    it('by a later mechanism of login$ (PLAIN refused, then LOGIN refused quoting it) stays hidden', async () => {
      let plainLine = '';
      const session = await sessionWith({
        extensions: ['AUTH PLAIN LOGIN'],
        handlers: {
          AUTH: (line) => {
            if (line.startsWith('AUTH PLAIN')) {
              plainLine = line;
              return '535 5.7.8 no';
            }
            return `535 5.7.8 no, and earlier you said ${plainLine}`;
          },
        },
      });
      const login = login$(session, 'user', 'hunter22', { allowPlaintextAuth: true, mechanisms: ['PLAIN', 'LOGIN'] });
      const wire = await seenIn(session, login, () => outcome(session.connection.request$(NOOP)));
      expect(wire).toContain('ERR_SMTP_AUTHENTICATION');
      expect(bench.fake.session.commands).toContain(`AUTH PLAIN ${PLAIN_SECRET}`);
      expect(bench.fake.session.commands.some((c) => c.startsWith('AUTH LOGIN'))).toBe(true);
      expect(wire).toContain('earlier you said');
      expect(wire).not.toContain(PLAIN_SECRET);
      expect(wire).not.toContain('hunter22');
    });

    it.each([
      ['an unsolicited reply', (line: string) => `500 5.5.1 you said ${line}`, 'Unsolicited reply'],
      ['a malformed line', (line: string) => `X ${line}`, 'Malformed reply line'],
    ])('in %s after the exchange stays hidden in debug$ and in the connection error', async (_, echo, kind) => {
      const session = await sessionWith({
        extensions: ['AUTH PLAIN'],
        handlers: { AUTH: (line) => ({ raw: `235 2.7.0 ok\r\n${echo(line)}\r\n` }) },
      });
      const plain = auth$(
        session,
        { name: 'PLAIN', authobject: () => '\0user\0hunter22' },
        { allowPlaintextAuth: true },
      );
      // The connection fails with the protocol error once the exchange has had its 235.
      const failure = outcome(session.connection.replies$);
      const wire = await seenIn(session, plain, () => failure);
      expect(bench.fake.session.commands).toContain(`AUTH PLAIN ${PLAIN_SECRET}`);
      expect(wire).toContain(kind);
      expect(wire).not.toContain(PLAIN_SECRET);
      expect(wire).not.toContain('hunter22');
    });
  });

  describe('nothing is written once the connection is going', () => {
    it('a 354 that arrives with an over-long line: the body is not written, and the message is not "possibly delivered"', async () => {
      const session = await sessionWith({
        handlers: { DATA: { raw: `354 go ahead\r\n250 ${'x'.repeat(9_000)}\r\n` } },
      });
      const { error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], 'Subject: never\r\n\r\nbody\r\n'));
      expect(error).toMatchObject({ code: 'ERR_SMTP_REPLY_LIMIT' });
      await bench.fake.closedSession();
      expect(bench.fake.session.commands).toEqual([
        'EHLO c.test',
        'MAIL FROM:<a@x.test> SIZE=24',
        'RCPT TO:<b@x.test>',
        'DATA',
      ]);
      expect(bench.fake.text()).not.toContain('Subject: never');
    });

    it('a command that waited behind QUIT fails without being written after it', async () => {
      const session = await sessionWith({});
      const quit = outcome(session.connection.quit$());
      const { error } = await outcome(session.connection.request$(NOOP));
      expect(error).toBeInstanceOf(SMTPServerDisconnected);
      expect(String(error)).toContain('The connection is closing');
      expect((await quit).values.map((r) => r.code)).toEqual([221]);
      await bench.fake.closedSession();
      expect(bench.fake.text()).not.toContain('NOOP');
    });

    it('a command that waited behind a graceful close fails without being written before it', async () => {
      const authReply = gate();
      // An AUTH exchange holds the channel until its last reply: the close and the NOOP queue behind it.
      const session = await sessionWith({
        extensions: ['AUTH PLAIN'],
        handlers: { AUTH: { after: authReply.opened, reply: '235 2.7.0 ok' } },
      });
      const plain = outcome(
        auth$(session, { name: 'PLAIN', authobject: () => '\0user\0pw' }, { allowPlaintextAuth: true }),
      );
      await bench.fake.received('AUTH');
      session.connection.end();
      const noop = outcome(session.connection.request$(NOOP));
      authReply.open();

      expect((await plain).error).toBeUndefined();
      const { error } = await noop;
      expect(error).toBeInstanceOf(SMTPServerDisconnected);
      expect(String(error)).toContain('The connection is closing');
      await bench.fake.closedSession();
      expect(bench.fake.text()).not.toContain('NOOP');
    });

    it('a refusal read with the 354 stays the verdict when the body writes a microtask later', async () => {
      // smtp-sink -A without the reset: 354 and 550 in one segment. The 550 dooms the connection before
      // the body's first write, which comes from a promise.
      const session = await sessionWith({
        handlers: { DATA: { raw: '354 go ahead\r\n550 5.7.0 content refused\r\n' } },
      });
      const body = from(Promise.resolve(Buffer.from(`Subject: refused\r\n\r\n${'x'.repeat(70_000)}\r\n`)));
      const { error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], body));
      expect(error).toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 550 });
      await bench.fake.closedSession();
      expect(bench.fake.text()).not.toContain('Subject: refused');
    });

    it('a violation read stays the reason when a caller tears the connection down before it does', async () => {
      const session = await sessionWith({
        handlers: { DATA: { raw: `354 go ahead\r\n250 ${'x'.repeat(9_000)}\r\n` } },
      });
      const failure = outcome(session.connection.replies$);
      // data$ leaves at once on the refused body write, destroying the connection itself.
      const { error } = await outcome(data$(session, 'Subject: never\r\n\r\nbody\r\n'));
      expect(error).toMatchObject({ code: 'ERR_SMTP_REPLY_LIMIT' });
      expect((await failure).error).toMatchObject({ code: 'ERR_SMTP_REPLY_LIMIT' });
      expect(bench.fake.text()).not.toContain('Subject: never');
    });

    it('data$ and auth$ queued behind QUIT fail alone: the QUIT still gets its 221', async () => {
      const session = await sessionWith({ extensions: ['AUTH PLAIN'] });
      const quit = outcome(session.connection.quit$());
      const data = outcome(data$(session, 'Subject: late\r\n\r\nbody\r\n'));
      const plain = outcome(
        auth$(session, { name: 'PLAIN', authobject: () => '\0user\0pw' }, { allowPlaintextAuth: true }),
      );
      expect((await data).error).toBeInstanceOf(SMTPServerDisconnected);
      expect((await plain).error).toBeInstanceOf(SMTPServerDisconnected);
      const { values, error } = await quit;
      expect(error).toBeUndefined();
      expect(values.map((r) => r.code)).toEqual([221]);
      expect(bench.fake.session.commands).toEqual(['EHLO c.test', 'QUIT']);
    });
  });
});
