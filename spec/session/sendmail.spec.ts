import { Observable, catchError, lastValueFrom, mergeMap, of, range, take, toArray } from 'rxjs';
import {
  SMTPDataError,
  SMTPNotSupportedError,
  SMTPPossiblyDeliveredError,
  SMTPRecipientsRefused,
  SMTPSenderRefused,
  SMTPServerDisconnected,
  SMTPTimeoutError,
} from '../../lib/errors';
import { Session } from '../../lib/session/session';
import { SendEvent, sendmail$ } from '../../lib/session/sendmail';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { all, collect } from '../helpers/events';
import { openSession } from '../helpers/session';

const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';

describe('sendmail$', () => {
  let fake: FakeServer;
  let held: { session: Session; close(): void } | undefined;
  afterEach(async () => {
    held?.close();
    held = undefined;
    await fake.close();
  });

  /** A ready session on a fake server, kept open until the test ends. */
  async function sessionWith(script: FakeScript, options: { lmtp?: boolean } = {}): Promise<Session> {
    fake = await FakeServer.start(script);
    const opened = await openSession(fake.port, { timeout: 2000, ...options });
    held = { session: opened.session, close: opened.close };
    fake.session.commands.length = 0;
    fake.session.chunks.length = 0;
    return opened.session;
  }

  const send = (session: Session, to: string[] | string, body: Parameters<typeof sendmail$>[3] = MESSAGE, opts = {}) =>
    collect(sendmail$(session, 'a@x.test', to, body, opts));

  describe('with PIPELINING', () => {
    it('sends MAIL, every RCPT and DATA in one write, then the body', async () => {
      const session = await sessionWith({ holdRepliesUntil: 'DATA' });
      const { values, error } = await send(session, ['b@x.test', 'c@x.test']);
      expect(error).toBeUndefined();
      expect(fake.session.chunks[0]?.toString()).toBe(
        'MAIL FROM:<a@x.test> SIZE=23\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n',
      );
      expect(values.map((e) => e.type)).toEqual(['recipient', 'recipient', 'progress', 'sent']);
      expect(values[values.length - 1]).toMatchObject({ type: 'sent', reply: { code: 250 }, refused: {} });
      expect(fake.session.messages[0]?.toString()).toBe(MESSAGE);
    });

    it('reports a partial refusal as events and in the refused map', async () => {
      const session = await sessionWith({
        handlers: { RCPT: (line) => (line.includes('bad@') ? '550 5.1.1 no such user' : '250 2.1.5 ok') },
      });
      const { values, error } = await send(session, ['good@x.test', 'bad@x.test']);
      expect(error).toBeUndefined();
      expect(values.slice(0, 2)).toEqual([
        { type: 'recipient', recipient: 'good@x.test', accepted: true, reply: expect.objectContaining({ code: 250 }) },
        {
          type: 'recipient',
          recipient: 'bad@x.test',
          accepted: false,
          reply: expect.objectContaining({ code: 550, enhancedStatus: '5.1.1' }),
        },
      ]);
      const sent = values[values.length - 1] as Extract<SendEvent, { type: 'sent' }>;
      expect(Object.keys(sent.refused)).toEqual(['bad@x.test']);
    });

    it('ends a 354 with a lone dot when every recipient was refused, then RSET', async () => {
      const session = await sessionWith({ handlers: { RCPT: '550 5.1.1 no' } });
      const { values, error } = await send(session, ['b@x.test', 'c@x.test']);
      expect(error).toBeInstanceOf(SMTPRecipientsRefused);
      expect(Object.keys((error as SMTPRecipientsRefused).recipients)).toEqual(['b@x.test', 'c@x.test']);
      expect(values.map((e) => e.type)).toEqual(['recipient', 'recipient']);
      expect(fake.session.commands.slice(-1)).toEqual(['RSET']);
      expect(fake.session.messages).toEqual([Buffer.alloc(0)]);
      expect(session.connection.open).toBe(true);
    });

    it('refuses an empty recipient list before anything is sent', async () => {
      const session = await sessionWith({});
      const { error } = await send(session, []);
      expect(error).toBeInstanceOf(SMTPRecipientsRefused);
      expect((error as SMTPRecipientsRefused).recipients).toEqual({});
      expect(fake.session.commands).toEqual([]);
    });

    it('closes without RSET on a 421 to MAIL', async () => {
      const session = await sessionWith({ handlers: { MAIL: '421 4.3.2 going down', DATA: '503 no' } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPSenderRefused);
      expect(error).toMatchObject({ smtpCode: 421, sender: 'a@x.test' });
      await fake.closedSession();
      expect(fake.session.commands).not.toContain('RSET');
    });

    it('reports a 421 to a pipelined MAIL when the server closes without answering the rest', async () => {
      const session = await sessionWith({ handlers: { MAIL: { close: true, reply: '421 4.3.2 closing' } } });
      const { values, error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPSenderRefused);
      expect(error).toMatchObject({ smtpCode: 421 });
      expect(values).toEqual([]);
    });

    it('reports a 421 to a pipelined RCPT as SMTPRecipientsRefused with that reply', async () => {
      const session = await sessionWith({ handlers: { RCPT: { close: true, reply: '421 4.7.0 closing' } } });
      const { error } = await send(session, ['b@x.test', 'c@x.test']);
      expect(error).toBeInstanceOf(SMTPRecipientsRefused);
      expect((error as SMTPRecipientsRefused).recipients['b@x.test']).toMatchObject({ code: 421 });
    });

    it('reports a 421 to DATA as SMTPDataError', async () => {
      const session = await sessionWith({ handlers: { DATA: { close: true, reply: '421 4.3.0 closing' } } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(error).toMatchObject({ smtpCode: 421 });
    });

    it('emits no recipient events for the RCPT replies that follow a refused MAIL', async () => {
      const session = await sessionWith({
        handlers: { MAIL: '550 5.7.1 no', RCPT: '503 5.5.1 need MAIL', DATA: '503 5.5.1 need MAIL' },
      });
      const { values, error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPSenderRefused);
      expect(values).toEqual([]);
    });

    it('sends RSET after a refused sender and keeps the connection', async () => {
      const session = await sessionWith({ handlers: { MAIL: '553 5.7.1 not you', RCPT: '503 no', DATA: '503 no' } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPSenderRefused);
      expect(fake.session.commands.slice(-1)).toEqual(['RSET']);
      expect(session.connection.open).toBe(true);
    });

    it('closes a connection whose RSET is refused after a failure', async () => {
      const session = await sessionWith({
        handlers: { MAIL: '553 5.7.1 not you', RCPT: '503 no', DATA: '503 no', RSET: '500 what' },
      });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPSenderRefused);
      await fake.closedSession();
      expect(session.connection.open).toBe(false);
    });

    it('errors with SMTPDataError and closes on a 421 at the end of data', async () => {
      const session = await sessionWith({ handlers: { '.': '421 4.3.0 bye' } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(error).toMatchObject({ smtpCode: 421 });
      await fake.closedSession();
      expect(fake.session.commands).not.toContain('RSET');
    });

    it('errors with SMTPDataError and sends RSET on a 552 at the end of data', async () => {
      const session = await sessionWith({ handlers: { '.': '552 5.3.4 too big' } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(error).toMatchObject({ smtpCode: 552 });
      expect(fake.session.commands.slice(-1)).toEqual(['RSET']);
      const again = await send(session, ['b@x.test']);
      expect(again.error).toBeInstanceOf(SMTPDataError);
    });

    it('stacks transactions: the next MAIL goes out before the previous final reply', async () => {
      const session = await sessionWith({});
      const wire: string[] = [];
      session.connection.debug$.subscribe((e) => wire.push(`${e.direction} ${e.text}`));
      const [first, second] = await Promise.all([
        all(sendmail$(session, 'a@x.test', 'b@x.test', 'one')),
        all(sendmail$(session, 'a@x.test', 'c@x.test', 'two')),
      ]);
      expect(first[first.length - 1]?.type).toBe('sent');
      expect(second[second.length - 1]?.type).toBe('sent');
      const firstDot = wire.indexOf('send .');
      const secondMail = wire.findIndex((l, i) => i > firstDot && l.startsWith('send MAIL'));
      const firstQueued = wire.findIndex((l) => l.startsWith('receive 250 2.0.0 Ok: queued'));
      expect(secondMail).toBeGreaterThan(firstDot);
      expect(secondMail).toBeLessThan(firstQueued);
      expect(fake.session.messages.map(String)).toEqual(['one\r\n', 'two\r\n']);
    });
  });

  describe('without PIPELINING (lockstep)', () => {
    const lockstep = { extensions: ['8BITMIME', 'SIZE 1000000'] };

    it('writes one command per round trip', async () => {
      const session = await sessionWith(lockstep);
      const { error } = await send(session, ['b@x.test', 'c@x.test']);
      expect(error).toBeUndefined();
      const commandChunks = fake.session.chunks.slice(0, 4).map(String);
      expect(commandChunks).toEqual([
        'MAIL FROM:<a@x.test> SIZE=23\r\n',
        'RCPT TO:<b@x.test>\r\n',
        'RCPT TO:<c@x.test>\r\n',
        'DATA\r\n',
      ]);
    });

    it('stops at a 421 to RCPT: later recipients are not sent', async () => {
      const session = await sessionWith({
        ...lockstep,
        handlers: { RCPT: (l) => (l.includes('c@') ? '421 4.7.0 closing' : '250 ok') },
      });
      const { values, error } = await send(session, ['b@x.test', 'c@x.test', 'd@x.test']);
      expect(error).toBeInstanceOf(SMTPRecipientsRefused);
      expect(Object.keys((error as SMTPRecipientsRefused).recipients)).toEqual(['c@x.test']);
      expect(values.map((e) => e.type === 'recipient' && e.recipient)).toEqual(['b@x.test', 'c@x.test']);
      await fake.closedSession();
      expect(fake.session.commands).toEqual([
        'MAIL FROM:<a@x.test> SIZE=23',
        'RCPT TO:<b@x.test>',
        'RCPT TO:<c@x.test>',
      ]);
    });

    it('does not send DATA when every recipient was refused', async () => {
      const session = await sessionWith({ ...lockstep, handlers: { RCPT: '550 no' } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPRecipientsRefused);
      expect(fake.session.commands).toEqual(['MAIL FROM:<a@x.test> SIZE=23', 'RCPT TO:<b@x.test>', 'RSET']);
    });

    it('errors with SMTPDataError when DATA is refused, then RSET', async () => {
      const session = await sessionWith({ ...lockstep, handlers: { DATA: '554 5.5.1 no valid recipients' } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(fake.session.commands.slice(-1)).toEqual(['RSET']);
    });
  });

  describe('LMTP', () => {
    it('emits one delivery event per accepted recipient after the body', async () => {
      const session = await sessionWith(
        {
          handlers: {
            RCPT: (l) => (l.includes('gone@') ? '550 5.1.1 unknown' : '250 2.1.5 ok'),
            '.': '250 2.0.0 <b> delivered\r\n452 4.2.2 <c> over quota',
          },
        },
        { lmtp: true },
      );
      const { values, error } = await send(session, ['b@x.test', 'gone@x.test', 'c@x.test']);
      expect(error).toBeUndefined();
      expect(values.filter((e) => e.type === 'delivery')).toEqual([
        { type: 'delivery', recipient: 'b@x.test', delivered: true, reply: expect.objectContaining({ code: 250 }) },
        { type: 'delivery', recipient: 'c@x.test', delivered: false, reply: expect.objectContaining({ code: 452 }) },
      ]);
      const sent = values[values.length - 1] as Extract<SendEvent, { type: 'sent' }>;
      expect(Object.keys(sent.refused).sort()).toEqual(['c@x.test', 'gone@x.test']);
      expect(fake.session.commands[0]).toMatch(/^MAIL/);
    });

    it('takes one reply per accepted recipient to BDAT LAST', async () => {
      const session = await sessionWith(
        {
          extensions: ['PIPELINING', 'CHUNKING'],
          handlers: {
            BDAT: (l) => (l.endsWith(' LAST') ? '250 2.0.0 <b> delivered\r\n452 4.2.2 <c> over quota' : '250 ok'),
          },
        },
        { lmtp: true },
      );
      const { values, error } = await send(session, ['b@x.test', 'c@x.test']);
      expect(error).toBeUndefined();
      expect(fake.session.commands.filter((c) => c.startsWith('BDAT'))).toEqual([`BDAT ${MESSAGE.length} LAST`]);
      expect(values.filter((e) => e.type === 'delivery')).toEqual([
        { type: 'delivery', recipient: 'b@x.test', delivered: true, reply: expect.objectContaining({ code: 250 }) },
        { type: 'delivery', recipient: 'c@x.test', delivered: false, reply: expect.objectContaining({ code: 452 }) },
      ]);
    });

    it('errors with SMTPDataError when no recipient got the message', async () => {
      const session = await sessionWith({ handlers: { '.': '451 a\r\n452 b' } }, { lmtp: true });
      const { values, error } = await send(session, ['b@x.test', 'c@x.test']);
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(values.filter((e) => e.type === 'delivery')).toHaveLength(2);
    });
  });

  describe('CHUNKING', () => {
    const chunking = { extensions: ['PIPELINING', 'CHUNKING', '8BITMIME', 'BINARYMIME', 'SIZE 100000000'] };

    it('sends MAIL, RCPT and BDAT LAST with the body in one write', async () => {
      const session = await sessionWith(chunking);
      const body = 'line one\nline two\r\n.leading dot\n';
      const { error, values } = await send(session, ['b@x.test'], body);
      expect(error).toBeUndefined();
      const canonical = 'line one\r\nline two\r\n.leading dot\r\n';
      expect(fake.session.chunks[0]?.toString()).toBe(
        `MAIL FROM:<a@x.test> SIZE=${canonical.length}\r\nRCPT TO:<b@x.test>\r\nBDAT ${canonical.length} LAST\r\n${canonical}`,
      );
      expect(values[values.length - 1]).toMatchObject({ type: 'sent' });
      expect(fake.session.messages[0]?.toString()).toBe(canonical);
    });

    it('stops at a refused BDAT chunk without PIPELINING: the refusal is the verdict, no later chunk is sent', async () => {
      const session = await sessionWith({
        extensions: ['CHUNKING'],
        handlers: { BDAT: (l) => (l.endsWith(' LAST') ? '250 2.0.0 queued' : '552 5.3.4 Message too big') },
      });
      const { error } = await send(
        session,
        ['b@x.test'],
        (async function* () {
          yield Buffer.from('a'.repeat(70_000));
          yield Buffer.from('b'.repeat(70_000));
        })(),
      );
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(error).toMatchObject({ smtpCode: 552 });
      expect(fake.session.commands.filter((c) => c.startsWith('BDAT'))).toEqual(['BDAT 65536']);
    });

    it('splits a streamed body into several BDAT chunks', async () => {
      const session = await sessionWith(chunking);
      const parts = ['a'.repeat(70_000), 'b'.repeat(70_000)];
      const { error } = await send(
        session,
        ['b@x.test'],
        (async function* () {
          for (const p of parts) yield Buffer.from(p);
        })(),
      );
      expect(error).toBeUndefined();
      expect(fake.session.commands.filter((c) => c.startsWith('BDAT'))).toEqual([
        'BDAT 65536',
        'BDAT 4464',
        'BDAT 65536',
        'BDAT 4464 LAST',
      ]);
      expect(fake.session.messages.map((m) => m.length)).toEqual([65536, 4464, 65536, 4464]);
    });

    it('reports the envelope failure over the BDAT error when the sender is refused', async () => {
      const session = await sessionWith({
        ...chunking,
        handlers: { MAIL: '550 5.7.1 no', RCPT: '503 5.5.1 MAIL first', BDAT: '503 5.5.1 MAIL first' },
      });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPSenderRefused);
      expect(fake.session.commands.slice(-1)).toEqual(['RSET']);
    });

    it('reports a 421 to MAIL, not "possibly delivered", when the server closes before the body', async () => {
      const session = await sessionWith({
        ...chunking,
        handlers: { MAIL: { close: true, reply: '421 4.3.2 closing' } },
      });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPSenderRefused);
      expect(error).toMatchObject({ smtpCode: 421 });
    });

    it('sends BINARYMIME bodies untouched', async () => {
      const session = await sessionWith(chunking);
      const body = Buffer.from([0x00, 0x0a, 0x2e, 0x0d, 0xff]);
      const { error } = await send(session, ['b@x.test'], body, { body: 'BINARYMIME' });
      expect(error).toBeUndefined();
      expect(fake.session.commands[0]).toBe('MAIL FROM:<a@x.test> SIZE=5 BODY=BINARYMIME');
      expect(fake.session.messages[0]).toEqual(body);
    });
  });

  describe('possibly delivered', () => {
    it('is the outcome when the server closes after the final dot without a reply', async () => {
      const session = await sessionWith({ handlers: { '.': { close: true } } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPPossiblyDeliveredError);
      expect((error as Error).cause).toBeInstanceOf(SMTPServerDisconnected);
      // The caller is told what not to do, and why.
      expect((error as Error).message).toMatch(
        /^The connection failed after the message was written and before the server confirmed it \(.+\); it may have been delivered: do not resend it blindly$/,
      );
    });

    it('is the outcome when the final reply times out', async () => {
      const session = await sessionWith({ handlers: { '.': { stall: true } } });
      const { error } = await collect(
        sendmail$({ ...session, timeouts: { ...session.timeouts, dataEnd: 50 } }, 'a@x.test', 'b@x.test', MESSAGE),
      );
      expect(error).toBeInstanceOf(SMTPPossiblyDeliveredError);
      expect((error as Error).cause).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'dataEnd' });
    });

    it('is the outcome when a stacked BDAT message was fully written and the connection dropped', async () => {
      const session = await sessionWith({
        extensions: ['PIPELINING', 'CHUNKING'],
        handlers: { MAIL: { raw: '' }, RCPT: { raw: '' }, BDAT: { close: true } },
      });
      const { error } = await send(session, ['b@x.test']);
      expect(fake.session.commands.map((c) => c.split(' ')[0])).toEqual(['MAIL', 'RCPT', 'BDAT']);
      expect(error).toBeInstanceOf(SMTPPossiblyDeliveredError);
    });

    /** A body whose second line is only offered once the server has closed the connection. */
    async function* outlivingTheServer(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('first line\r\n');
      await fake.closedSession();
      await new Promise((r) => setImmediate(r));
      yield Buffer.from('second line\r\n');
    }

    it('is not the outcome when the connection dropped before the final dot was written', async () => {
      const session = await sessionWith({ handlers: { 'DATA-LINE': { close: true } } });
      const { error } = await send(session, ['b@x.test'], outlivingTheServer());
      expect(error).toBeInstanceOf(SMTPServerDisconnected);
      expect(error).not.toBeInstanceOf(SMTPPossiblyDeliveredError);
    });

    it('is not the outcome when the server refuses in the middle of the body: that refusal is', async () => {
      const session = await sessionWith({
        handlers: { 'DATA-LINE': { close: true, reply: '552 5.3.4 Message too big' } },
      });
      const { error } = await send(session, ['b@x.test'], outlivingTheServer());
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(error).toMatchObject({ smtpCode: 552, code: 'ERR_SMTP_DATA' });
    });

    it('is not the outcome when the connection drops before the body', async () => {
      const session = await sessionWith({ handlers: { MAIL: { close: true } } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPServerDisconnected);
    });
  });

  describe('cancellation', () => {
    it('sends RSET when unsubscribed before the body, keeping the connection', async () => {
      const session = await sessionWith({
        extensions: ['SIZE 1000'],
        handlers: { RCPT: { delayMs: 100, reply: '250 2.1.5 Ok' } },
      });
      const sub = sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE).subscribe();
      await fake.received('RCPT');
      sub.unsubscribe();
      expect(session.connection.open).toBe(true);
      await fake.until(() => fake.session.bytes.map(String).join('').includes('RSET'));
    });

    it('closes the connection when a streamed body fails midway: nothing more goes inside the DATA', async () => {
      const session = await sessionWith({});
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('part\r\n');
        throw new Error('source broke');
      }
      const [broken, next] = await Promise.all([send(session, 'b@x.test', failing()), send(session, 'c@x.test')]);
      expect(broken.error).toMatchObject({ message: 'source broke' });
      expect(next.error).toBeInstanceOf(SMTPServerDisconnected);
      expect(next.error).not.toBeInstanceOf(SMTPTimeoutError);
      await fake.closedSession();
      expect(fake.session.messages).toEqual([]);
      expect(fake.session.bytes.map(String).join('')).not.toContain('c@x.test');
    });

    it('closes, rather than end the DATA, when unsubscribed with the group unanswered and a recipient then accepted', async () => {
      // MAIL's reply is held back (1 s: far longer than noticing DATA takes), so the RCPT's and DATA's wait
      // behind it: the whole group is unanswered when the subscriber leaves.
      const session = await sessionWith({ handlers: { MAIL: { delayMs: 1000, reply: '250 2.1.0 Ok' } } });
      const sub = sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE).subscribe();
      await fake.received('DATA');
      sub.unsubscribe();
      await fake.closedSession();
      // A lone dot after the 354 would have delivered an empty message to b@x.test (RFC 2920 §3.1).
      expect(fake.session.messages).toEqual([]);
      expect(fake.session.commands).toEqual([
        expect.stringMatching(/^MAIL FROM:<a@x.test>/),
        'RCPT TO:<b@x.test>',
        'DATA',
      ]);
    });

    it('destroys the connection when unsubscribed during the body', async () => {
      const session = await sessionWith({});
      const endless = new Observable<Uint8Array>((subscriber) => {
        subscriber.next(Buffer.from('x'.repeat(1000)));
      });
      const sub = sendmail$(session, 'a@x.test', 'b@x.test', endless).subscribe();
      await fake.received('DATA');
      await fake.until(() => fake.session.bytes.map(String).join('').includes('xxxx'));
      sub.unsubscribe();
      expect(session.connection.open).toBe(false);
      await fake.closedSession();
    });
  });

  describe('cancellation in a synchronous event', () => {
    it('stops a stacked BDAT whose subscriber leaves in its first progress event: nothing is delivered', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'CHUNKING'] });
      const first = await lastValueFrom(sendmail$(session, 'a@x.test', 'b@x.test', 'taken body\r\n').pipe(take(1)));
      expect(first).toMatchObject({ type: 'progress' });
      // Its envelope had left and the server may read the BDAT: only closing stops it.
      await fake.closedSession();
      expect(fake.session.messages).toEqual([]);
      expect(fake.session.commands.some((c) => c.startsWith('BDAT'))).toBe(false);
    });
  });

  describe('a refused final reply', () => {
    it('sends no RSET for a transaction whose subscriber left while the RSET waited for the lock', async () => {
      let dots = 0;
      const session = await sessionWith({
        handlers: { '.': () => (++dots === 1 ? '552 5.3.4 too big' : '250 2.0.0 queued') },
      });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      async function* heldBody(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('held\r\n');
        await gate;
      }
      const first = sendmail$(session, 'a@x.test', 'b@x.test', 'one').subscribe({ error: () => undefined });
      // The second holds the write lock in its body, so the first one's RSET has to wait for it.
      const second = collect(sendmail$(session, 'a@x.test', 'c@x.test', heldBody()));
      await fake.until(() => dots === 1 && fake.session.bytes.map(String).join('').includes('held'));
      first.unsubscribe();
      release();
      expect((await second).error).toBeUndefined();
      expect(fake.session.commands).not.toContain('RSET');
    });
  });

  describe('a refusal in the middle of the body', () => {
    // smtp-sink -A: 354 and 550 in one segment, then the connection reset. The body's first write,
    // made on the 354 before the 550 is read, meets the reset: the 550 already read is the verdict.
    it("is the verdict even when the body's first write meets the reset that follows it", async () => {
      const session = await sessionWith({
        handlers: { DATA: { close: true, reset: true, reply: '354 go ahead\r\n550 5.7.0 This violates SMTP' } },
      });
      const { values, error } = await send(session, 'b@x.test', `${'x'.repeat(998)}\r\n`.repeat(1024));
      expect(error).toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 550 });
      expect(values.filter((e) => e.type === 'sent')).toEqual([]);
    });
  });

  describe('a connection lost with many transactions queued', () => {
    it('gives each its own outcome, in the order they were queued, without a deep stack', async () => {
      const session = await sessionWith({ handlers: { MAIL: { reply: '421 4.3.2 shutting down', close: true } } });
      const count = 3000;
      const outcomes: number[] = [];
      const failures = await lastValueFrom(
        range(0, count).pipe(
          mergeMap(
            (i) =>
              sendmail$(session, 'a@x.test', `r${i}@x.test`, 'x').pipe(
                catchError((err: unknown) => (outcomes.push(i), of(err))),
              ),
            count,
          ),
          toArray(),
        ),
      );
      expect(failures).toHaveLength(count);
      expect(outcomes).toEqual(Array.from({ length: count }, (_, i) => i));
      expect(failures[0]).toBeInstanceOf(SMTPSenderRefused);
      expect(failures.slice(1).every((err) => err instanceof SMTPServerDisconnected)).toBe(true);
    });
  });

  describe('stacked transactions', () => {
    it('starts a reply timer only when that reply is next: a slow final reply does not time out the next MAIL', async () => {
      const session = await sessionWith({ handlers: { '.': { delayMs: 400, reply: '250 2.0.0 queued late' } } });
      const quick = { ...session, timeouts: { ...session.timeouts, mail: 200, rcpt: 200, data: 200, dataEnd: 3000 } };
      const [first, second] = await Promise.all([
        collect(sendmail$(quick, 'a@x.test', 'b@x.test', 'one')),
        collect(sendmail$(quick, 'a@x.test', 'c@x.test', 'two')),
      ]);
      expect(first.error).toBeUndefined();
      expect(second.error).toBeUndefined();
    });

    it('lets an earlier transaction finish when a later one is cancelled during its envelope', async () => {
      const session = await sessionWith({ handlers: { '.': { delayMs: 200, reply: '250 2.0.0 queued' } } });
      const first = collect(sendmail$(session, 'a@x.test', 'b@x.test', 'one'));
      const second = sendmail$(session, 'a@x.test', 'c@x.test', 'two').subscribe();
      await fake.until(() => fake.session.commands.filter((c) => c.startsWith('MAIL')).length === 2);
      second.unsubscribe();
      const { values, error } = await first;
      expect(error).toBeUndefined();
      expect(values[values.length - 1]).toMatchObject({ type: 'sent' });
      // The cancelled one had DATA accepted for a recipient: only closing can stop it, never a dot.
      await fake.closedSession();
      expect(fake.session.messages.map(String)).toEqual(['one\r\n']);
    });

    it('keeps the connection when a transaction cancelled during its envelope had DATA refused', async () => {
      const session = await sessionWith({ handlers: { RCPT: '550 5.1.1 no', DATA: '554 5.5.1 no valid recipients' } });
      const sub = sendmail$(session, 'a@x.test', 'c@x.test', 'two').subscribe();
      sub.unsubscribe();
      await fake.until(() => fake.session.commands.includes('RSET'));
      expect(session.connection.open).toBe(true);
      const again = await send(session, ['b@x.test']);
      expect(again.error).toBeInstanceOf(SMTPRecipientsRefused);
    });
  });

  describe('the beforeEnd hook', () => {
    const chunking = { extensions: ['PIPELINING', 'CHUNKING', '8BITMIME', 'SIZE 100000000'] };
    const wire = () => Buffer.concat(fake.session.bytes).toString();
    /** A hook that records what the server had received when it ran, and settles when told. */
    function gate() {
      let settle!: { resolve(): void; reject(err: unknown): void };
      const seen: string[] = [];
      const hook = () => {
        seen.push(wire());
        return new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      };
      return { hook, seen, settle: () => settle };
    }

    it('runs after the 354 and before the body and its dot, which wait for it', async () => {
      const session = await sessionWith({});
      const { hook, seen, settle } = gate();
      const result = collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, {}, {}, { beforeEnd: hook }));
      await fake.until(() => seen.length === 1);
      expect(seen[0]).toMatch(/DATA\r\n$/);
      expect(fake.session.messages).toEqual([]);
      settle().resolve();
      const { error, values } = await result;
      expect(error).toBeUndefined();
      expect(values[values.length - 1]).toMatchObject({ type: 'sent' });
      expect(fake.session.messages.map(String)).toEqual([MESSAGE]);
    });

    it('runs after a streamed body, before its dot', async () => {
      const session = await sessionWith({});
      const { hook, seen, settle } = gate();
      const body = (async function* () {
        yield Buffer.from('a'.repeat(70_000) + '\r\n');
        yield Buffer.from('tail\r\n');
      })();
      const result = collect(sendmail$(session, 'a@x.test', 'b@x.test', body, {}, {}, { beforeEnd: hook }));
      await fake.until(() => seen.length === 1 && wire().includes('tail'));
      expect(wire()).not.toContain('tail\r\n.\r\n');
      settle().resolve();
      expect((await result).error).toBeUndefined();
      expect(fake.session.messages.map((m) => m.length)).toEqual([70_008]);
    });

    it('makes pipelined BDAT wait for the envelope, and BDAT LAST for the hook', async () => {
      const session = await sessionWith({ ...chunking, handlers: { RCPT: { delayMs: 30, reply: '250 2.1.5 Ok' } } });
      const { hook, seen, settle } = gate();
      const events: SendEvent[] = [];
      let recipientsAtHook: SendEvent[] | undefined;
      const done = new Promise<unknown>((resolve) => {
        sendmail$(
          session,
          'a@x.test',
          'b@x.test',
          MESSAGE,
          {},
          {},
          {
            beforeEnd: () => {
              recipientsAtHook = events.filter((e) => e.type === 'recipient');
              return hook();
            },
          },
        ).subscribe({ next: (e) => events.push(e), error: resolve, complete: () => resolve(undefined) });
      });
      await fake.until(() => seen.length === 1);
      expect(recipientsAtHook).toMatchObject([{ recipient: 'b@x.test', accepted: true }]);
      expect(seen[0]).toMatch(new RegExp(`\r\nMAIL FROM:<a@x.test> SIZE=${MESSAGE.length}\r\nRCPT TO:<b@x.test>\r\n$`));
      settle().resolve();
      expect(await done).toBeUndefined();
      expect(fake.session.commands.slice(-1)).toEqual([`BDAT ${MESSAGE.length} LAST`]);
    });

    it('fails the transaction with its error when it rejects: no dot, the connection closed', async () => {
      const session = await sessionWith({});
      const { hook, seen, settle } = gate();
      const result = collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, {}, {}, { beforeEnd: hook }));
      await fake.until(() => seen.length === 1);
      const refusal = new Error('redis is down');
      settle().reject(refusal);
      const { error, values } = await result;
      expect(error).toBe(refusal);
      expect(values.filter((e) => e.type === 'sent')).toEqual([]);
      await fake.until(() => fake.session.closed);
      expect(fake.session.messages).toEqual([]);
    });

    it('fails as a beforeEnd timeout when it never settles, under the data-block timer', async () => {
      const session = await sessionWith({});
      const impatient = { ...session, timeouts: { ...session.timeouts, dataBlock: 50 } };
      const { error } = await collect(
        sendmail$(
          impatient,
          'a@x.test',
          'b@x.test',
          MESSAGE,
          {},
          {},
          { beforeEnd: () => new Promise<void>(() => undefined) },
        ),
      );
      expect(error).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'beforeEnd' });
      await fake.until(() => fake.session.closed);
      expect(fake.session.messages).toEqual([]);
    });

    it('is left behind when the caller unsubscribes while it runs: the connection closes, no dot', async () => {
      const session = await sessionWith({});
      const { hook, seen, settle } = gate();
      const subscription = sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, {}, {}, { beforeEnd: hook }).subscribe({
        error: () => undefined,
      });
      await fake.until(() => seen.length === 1);
      subscription.unsubscribe();
      settle().resolve();
      await fake.until(() => fake.session.closed);
      expect(fake.session.messages).toEqual([]);
    });
  });

  describe('extensions', () => {
    it('refuses a body over the SIZE limit before MAIL', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'SIZE 10'] });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toMatchObject({ code: 'ERR_SMTP_SIZE_EXCEEDED', size: 23, limit: 10 });
      expect(fake.session.commands).toEqual([]);
    });

    it('adds BODY=8BITMIME for an 8-bit body when offered', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', '8BITMIME'] });
      await send(session, ['b@x.test'], 'Subject: é\r\n\r\nçà\r\n');
      expect(fake.session.commands[0]).toBe('MAIL FROM:<a@x.test> BODY=8BITMIME');
    });

    it('adds SMTPUTF8 for a non-ASCII address when offered, and refuses it otherwise', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'SMTPUTF8'] });
      await send(session, ['jörg@x.test']);
      expect(fake.session.commands.slice(0, 2)).toEqual(['MAIL FROM:<a@x.test> SMTPUTF8', 'RCPT TO:<jörg@x.test>']);
      held?.close();
      await fake.close();
      const plain = await sessionWith({ extensions: ['PIPELINING'] });
      const { error } = await send(plain, ['jörg@x.test']);
      expect(error).toBeInstanceOf(SMTPNotSupportedError);
      expect(fake.session.commands).toEqual([]);
    });

    it('sends an IDN domain as punycode without SMTPUTF8', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING'] });
      await send(session, ['user@bücher.example']);
      expect(fake.session.commands.slice(0, 2)).toEqual([
        'MAIL FROM:<a@x.test>',
        'RCPT TO:<user@xn--bcher-kva.example>',
      ]);
    });

    it('sends DSN parameters xtext-encoded when offered', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'DSN'] });
      await collect(
        sendmail$(
          session,
          'a@x.test',
          [{ address: 'b@x.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'b+x@x.test' }],
          MESSAGE,
          {
            ret: 'HDRS',
            envid: 'id=1 2',
          },
        ),
      );
      expect(fake.session.commands.slice(0, 2)).toEqual([
        'MAIL FROM:<a@x.test> RET=HDRS ENVID=id+3D1+202',
        'RCPT TO:<b@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@x.test',
      ]);
    });

    it('refuses REQUIRETLS on a plaintext connection', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'REQUIRETLS'] });
      const { error } = await send(session, ['b@x.test'], MESSAGE, { requireTls: true });
      expect(error).toBeInstanceOf(SMTPNotSupportedError);
      expect(fake.session.commands).toEqual([]);
    });

    it('refuses an ESMTP parameter with CR/LF or blanks before anything is sent', async () => {
      const session = await sessionWith({});
      const { error } = await send(session, ['b@x.test'], MESSAGE, { params: ['X=1\r\nRSET'] });
      expect(error).toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
      expect(fake.session.commands).toEqual([]);
    });
  });

  it('emits progress events while a large body is written, ending with the total', async () => {
    const session = await sessionWith({});
    const body = Buffer.alloc(1024 * 1024, 'a');
    const { values } = await send(session, ['b@x.test'], body);
    const progress = values.filter((e): e is Extract<SendEvent, { type: 'progress' }> => e.type === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(4);
    expect(progress[progress.length - 1]?.bytesSent).toBe(body.length + 2);
  });

  it('needs an open session', async () => {
    const session = await sessionWith({});
    held?.close();
    await fake.closedSession();
    await expect(lastValueFrom(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE))).rejects.toBeInstanceOf(
      SMTPServerDisconnected,
    );
  });
});
