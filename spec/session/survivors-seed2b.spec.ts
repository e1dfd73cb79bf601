import * as net from 'node:net';
import { lastValueFrom, timeout } from 'rxjs';
import {
  SMTPAuthenticationError,
  SMTPDataError,
  SMTPPossiblyDeliveredError,
  SMTPSenderRefused,
  SMTPServerDisconnected,
  SMTPTimeoutError,
} from '../../lib/errors';
import { auth$, login$, oauth$ } from '../../lib/session/authenticate';
import { rcpt$ } from '../../lib/session/mail';
import { sendMessage$ } from '../../lib/session/send-message';
import { SendEvent, sendmail$ } from '../../lib/session/sendmail';
import { resolveTimeouts } from '../../lib/session/session';
import { DebugEvent } from '../../lib/transport/debug';
import { FakeServer } from '../helpers/fake-server';
import { fakeSessions, openSession } from '../helpers/session';

/*
 * More behaviours of lib/session/ that the seed-2 mutation sample found unpinned (conditions,
 * LMTP's per-recipient replies, BDAT without PIPELINING); each test fails with its mutant
 * planted. Every wait has a deadline; verdicts are decided by what the wire and the user see.
 */

const DEADLINE = 5_000;
const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** Every event of `events$`, or the error it ends with, under the deadline. */
async function outcome(events$: ReturnType<typeof sendmail$>): Promise<{ values: SendEvent[]; error?: unknown }> {
  const values: SendEvent[] = [];
  return new Promise((resolve) => {
    events$.pipe(timeout(DEADLINE)).subscribe({
      next: (event) => values.push(event),
      error: (error: unknown) => resolve({ values, error }),
      complete: () => resolve({ values }),
    });
  });
}

/** An async body in several chunks (streamed, not "small"). */
async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield Buffer.from(part, 'latin1');
}

const sentOf = (values: SendEvent[]): Extract<SendEvent, { type: 'sent' }> => {
  const sent = values[values.length - 1];
  if (sent?.type !== 'sent') throw new Error(`no sent event: ${JSON.stringify(values)}`);
  return sent;
};

/**
 * A loopback LMTP server (RFC 2033) that answers the end of DATA for the first recipient only;
 * the second reply leaves when the test says, so the client must read it in a later read.
 */
async function lmtpServer(): Promise<{ port: number; secondReply(line: string): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let dataEnded!: (socket: net.Socket) => void;
  const ended = new Promise<net.Socket>((resolve) => (dataEnded = resolve));
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let pending = '';
    let inData = false;
    socket.write('220 lmtp.test LMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (inData) {
          if (line !== '.') continue;
          inData = false;
          socket.write('250 2.0.0 <b> delivered\r\n');
          dataEnded(socket);
        } else if (line.startsWith('LHLO')) socket.write('250-lmtp.test\r\n250 PIPELINING\r\n');
        else if (line === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (line === 'QUIT') socket.end('221 bye\r\n');
        else socket.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    secondReply: (line) => void ended.then((socket) => socket.write(`${line}\r\n`)),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('lib/session survivors (seed 2, part b)', () => {
  const bench = fakeSessions();

  it("the default deadlines are RFC 5321 §4.5.3.2's (5 minutes for the steps it does not name)", () => {
    const minutes = (n: number): number => n * 60_000;
    expect(resolveTimeouts()).toEqual({
      greeting: minutes(5),
      command: minutes(5),
      mail: minutes(5),
      rcpt: minutes(5),
      data: minutes(2),
      dataBlock: minutes(3),
      dataEnd: minutes(10),
    });
  });

  it('a refused EHLO is no capability list: its lines do not turn PIPELINING on', async () => {
    const session = await bench.open({ handlers: { EHLO: '554-fake.test EHLO refused\n554 PIPELINING' } });
    // The fallback to HELO (RFC 5321 §4.1.4) greeted the session.
    expect(bench.fake.session.commands.slice(0, 2)).toEqual(['EHLO c.test', 'HELO c.test']);
    expect(session.esmtpFeatures).toEqual({});
    expect(session.connection.pipelining).toBe(false);
  });

  it('rcpt$ without options writes RCPT TO:<…> and nothing after it', async () => {
    const session = await bench.open({});
    await lastValueFrom(rcpt$(session, 'b@x.test').pipe(timeout(DEADLINE)));
    expect(bench.fake.session.commands.at(-1)).toBe('RCPT TO:<b@x.test>');
  });

  it('without PIPELINING a refused MAIL ends the transaction before any RCPT', async () => {
    const session = await bench.open({ extensions: ['8BITMIME'], handlers: { MAIL: '550 5.7.1 sender blocked' } });
    bench.fake.session.commands.length = 0;
    const { error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], MESSAGE));
    expect(error).toBeInstanceOf(SMTPSenderRefused);
    expect(error).toMatchObject({ smtpCode: 550 });
    expect(bench.fake.session.commands).toEqual(['MAIL FROM:<a@x.test>', 'RSET']);
  });

  describe('LMTP: one final reply per accepted recipient (RFC 2033 §4.2)', () => {
    const lmtp = fakeSessions({ timeout: 2000, lmtp: true });

    it("DATA: the second recipient's reply, in a later read, is still awaited and counted", async () => {
      const server = await lmtpServer();
      const { session, close } = await openSession(server.port, { lmtp: true, timeout: 2000 });
      try {
        const values: SendEvent[] = [];
        const error = await new Promise<unknown>((resolve) => {
          sendmail$(session, 'a@x.test', ['b@x.test', 'c@x.test'], MESSAGE)
            .pipe(timeout(DEADLINE))
            .subscribe({
              next: (event) => {
                values.push(event);
                // The first recipient's reply is in: only now does the server give the second.
                if (event.type === 'delivery') server.secondReply('452 4.2.2 <c> over quota');
              },
              error: resolve,
              complete: () => resolve(undefined),
            });
        });
        expect(error).toBeUndefined();
        expect(values.map((e) => e.type)).toEqual([
          'recipient',
          'recipient',
          'progress',
          'delivery',
          'delivery',
          'sent',
        ]);
        expect(sentOf(values).refused['c@x.test']).toMatchObject({ code: 452, message: '4.2.2 <c> over quota' });
      } finally {
        close();
        await server.close();
      }
    });

    it("BDAT LAST: the data part owes the second recipient's reply", async () => {
      const session = await lmtp.open({
        extensions: ['PIPELINING', 'CHUNKING'],
        handlers: {
          BDAT: (l) => (l.endsWith(' LAST') ? '250 2.0.0 <b> delivered\r\n452 4.2.2 <c> over quota' : '250 ok'),
        },
      });
      const { values, error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test', 'c@x.test'], MESSAGE));
      expect(error).toBeUndefined();
      expect(values.flatMap((e) => (e.type === 'delivery' ? [[e.recipient, e.delivered]] : []))).toEqual([
        ['b@x.test', true],
        ['c@x.test', false],
      ]);
      expect(Object.keys(sentOf(values).refused)).toEqual(['c@x.test']);
    });
  });

  it('BDAT left while the envelope is unanswered: RSET, and no body once the replies come', async () => {
    let answer!: () => void;
    const gate = new Promise<void>((resolve) => (answer = resolve));
    // Without stacking (a beforeEnd hook), a pipelined BDAT waits for the envelope's replies.
    const session = await bench.open({
      extensions: ['PIPELINING', 'CHUNKING'],
      handlers: { RCPT: (l) => (l.includes('late@') ? { after: gate, reply: '250 2.1.5 ok' } : '250 2.1.5 ok') },
    });
    bench.fake.session.commands.length = 0;
    const hooks = { beforeEnd: () => Promise.resolve() };
    const left = sendmail$(session, 'a@x.test', ['late@x.test'], MESSAGE, {}, {}, hooks).subscribe({
      error: () => undefined,
    });
    await bench.fake.received('RCPT');
    left.unsubscribe();
    answer();
    // Replies come in order: once the next transaction is done, the left one's replies were read.
    const { values, error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], MESSAGE, {}, {}, hooks));
    expect(error).toBeUndefined();
    expect(sentOf(values).reply.code).toBe(250);
    expect(bench.fake.session.commands).toEqual([
      'MAIL FROM:<a@x.test>',
      'RCPT TO:<late@x.test>',
      'RSET',
      'MAIL FROM:<a@x.test>',
      'RCPT TO:<b@x.test>',
      'BDAT 23 LAST',
    ]);
    expect(bench.fake.session.messages.map(String)).toEqual([MESSAGE]);
  });

  describe('BDAT without PIPELINING: each chunk waits for its reply (RFC 3030 §4.2)', () => {
    const chunkingOnly = { extensions: ['CHUNKING', '8BITMIME', 'SIZE 1000000'] };

    // Over the 64 KiB chunk size: at least one BDAT before BDAT LAST.
    const LINES = `${'x'.repeat(98)}\r\n`.repeat(700);

    it('sends a streamed body as BDAT chunks, bytes as given: no dot-stuffing, no terminator', async () => {
      const session = await bench.open(chunkingOnly);
      bench.fake.session.commands.length = 0;
      const body = `Subject: s\r\n\r\n.dot line\r\n${LINES}no final crlf`;
      const { values, error } = await outcome(
        sendmail$(
          session,
          'a@x.test',
          ['b@x.test'],
          chunks('Subject: s\r\n\r\n', `.dot line\r\n${LINES}`, 'no final crlf'),
        ),
      );
      expect(error).toBeUndefined();
      expect(sentOf(values).reply.code).toBe(250);
      const bdats = bench.fake.session.commands.filter((c) => c.startsWith('BDAT'));
      expect(bdats).toEqual(['BDAT 14', 'BDAT 65536', `BDAT ${body.length - 14 - 65536} LAST`]);
      // The fake keeps each BDAT's bytes apart: together they are the message, untouched.
      expect(Buffer.concat(bench.fake.session.messages).toString('latin1')).toBe(body);
    });

    it('a refused chunk is the verdict: SMTPDataError naming BDAT, and no BDAT LAST', async () => {
      const session = await bench.open({ ...chunkingOnly, handlers: { BDAT: '552 5.3.4 message too big' } });
      bench.fake.session.commands.length = 0;
      const { error } = await outcome(
        sendmail$(session, 'a@x.test', ['b@x.test'], chunks('Subject: s\r\n\r\n', LINES, LINES)),
      );
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(error).toMatchObject({ smtpCode: 552, command: 'BDAT' });
      expect((error as Error).message).toContain('message too big');
      expect(bench.fake.session.commands.filter((c) => c.startsWith('BDAT'))).toEqual(['BDAT 14']);
    });

    it('a body source that fails midway fails the transaction with its error', async () => {
      const session = await bench.open(chunkingOnly);
      async function* broken(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('Subject: s\r\n\r\n');
        yield Buffer.from('part\r\n');
        throw new Error('disk gone');
      }
      const { error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], broken()));
      expect(error).toEqual(new Error('disk gone'));
    });
  });

  it('a connection lost while beforeEnd runs is a plain disconnection, not "possibly delivered"', async () => {
    const session = await bench.open({ handlers: { DATA: { close: true, reply: '354 go ahead' } } });
    const beforeEnd = (): Promise<void> => bench.fake.until(() => !session.connection.alive, DEADLINE);
    const { error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], MESSAGE, {}, {}, { beforeEnd }));
    expect(error).toBeInstanceOf(SMTPServerDisconnected);
    expect(error).not.toBeInstanceOf(SMTPPossiblyDeliveredError);
    expect(bench.fake.session.messages).toEqual([]);
  });

  describe('AUTH', () => {
    const trusted = { allowPlaintextAuth: true } as const;

    it('the last mechanism refused: its SMTPAuthenticationError stands', async () => {
      const session = await bench.open({ extensions: ['AUTH PLAIN'], handlers: { AUTH: '535 5.7.8 bad credentials' } });
      const err = await lastValueFrom(login$(session, 'u', 'secret-pw', trusted).pipe(timeout(DEADLINE))).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(err).toMatchObject({ smtpCode: 535 });
      expect((err as Error).message).toContain('bad credentials');
    });

    it.each([
      ['both XOAUTH2 and OAUTHBEARER', 'AUTH XOAUTH2 OAUTHBEARER'],
      ['neither', 'AUTH PLAIN'],
    ])('oauth$ picks XOAUTH2 when the server offers %s', async (_, offer) => {
      const session = await bench.open({ extensions: [offer], handlers: { AUTH: '235 2.7.0 ok' } });
      await lastValueFrom(oauth$(session, { user: 'u@x.test', token: 'tok', ...trusted }).pipe(timeout(DEADLINE)));
      expect(bench.fake.session.commands.find((c) => c.startsWith('AUTH'))).toMatch(/^AUTH XOAUTH2 /);
    });

    it('without an initial response, five challenges are allowed before the loop guard', async () => {
      let asked = 1;
      const session = await bench.open({
        extensions: ['AUTH X-ASK'],
        handlers: { AUTH: '334 YXNr', '*': () => (++asked <= 5 ? '334 YXNr' : '235 2.7.0 ok') },
      });
      bench.fake.session.commands.length = 0;
      const sent: string[] = [];
      session.connection.debug$.subscribe((e: DebugEvent) => e.direction === 'send' && sent.push(e.text));
      const step = await lastValueFrom(
        auth$(session, { name: 'X-ASK', authobject: () => 'answer' }, { ...trusted, initialResponseOk: false }).pipe(
          timeout(DEADLINE),
        ),
      );
      expect(step.reply.code).toBe(235);
      expect(bench.fake.session.commands).toEqual(['AUTH X-ASK', ...Array<string>(5).fill(b64('answer'))]);
      // No response went with AUTH: debug$ shows the command as it is, with nothing masked.
      expect(sent[0]).toBe('AUTH X-ASK');
    });
  });

  describe('AUTH cancelled by the client ("*", RFC 4954 §4)', () => {
    const quick = fakeSessions({ timeout: 300 });

    it('the "*" has the command deadline of an AUTH step', async () => {
      const session = await quick.open({
        extensions: ['AUTH CRAM-MD5'],
        handlers: { AUTH: '334 ', '*': { stall: true } },
      });
      const err = await lastValueFrom(
        login$(session, 'u', 'secret-pw', { allowPlaintextAuth: true }).pipe(timeout(DEADLINE)),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPTimeoutError);
      expect(err).toMatchObject({ step: 'auth', timeoutMs: 300 });
      expect((err as Error).message).toBe('Timed out after 300 ms waiting for the server (auth)');
      expect(quick.fake.session.commands.slice(-1)).toEqual(['*']);
    });
  });

  it('session$ hands the dialogue to the debug option', async () => {
    const fake = await FakeServer.start({});
    const events: DebugEvent[] = [];
    const { close } = await openSession(fake.port, { debug: (e) => events.push(e) });
    try {
      expect(events.filter((e) => e.direction === 'send').map((e) => e.text)).toEqual(['EHLO c.test']);
      expect(events.some((e) => e.direction === 'receive' && e.text.startsWith('220 fake.test'))).toBe(true);
    } finally {
      close();
      await fake.close();
    }
  });

  it('sendMessage$ adds BODY=8BITMIME to SMTPUTF8 (smtplib) when only a recipient is internationalised', async () => {
    const session = await bench.open({ extensions: ['PIPELINING', '8BITMIME', 'SMTPUTF8'] });
    bench.fake.session.commands.length = 0;
    const message = 'From: a@x.test\r\nTo: undisclosed-recipients:;\r\nSubject: hi\r\n\r\nHello.\r\n';
    const { error } = await outcome(sendMessage$(session, message, undefined, ['δοκιμή@x.test']));
    expect(error).toBeUndefined();
    expect(bench.fake.session.commands[0]).toBe('MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8');
    expect(bench.fake.session.commands[1]).toBe('RCPT TO:<δοκιμή@x.test>');
  });
});
