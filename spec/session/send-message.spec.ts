import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Subject, tap } from 'rxjs';
import { SMTPInvalidArgumentError, SMTPNotSupportedError, SMTPRecipientsRefused } from '../../lib/errors';
import { sendMessage$ } from '../../lib/session/send-message';
import { Body } from '../../lib/wire/body-source';
import { Session } from '../../lib/session/session';
import { collect } from '../helpers/events';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { openSession as openReadySession } from '../helpers/session';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';
import { defined } from '../helpers/defined';

/** A message with LF-written lines, sent with CRLF. */
const msg = (...lines: string[]): string => lines.map((l) => `${l}\r\n`).join('');

const BASIC = msg(
  'From: Ann Sender <ann@example.com>',
  'To: John <john@example.com>',
  'CC: Sally <sally@example.com>, "Smith, Bob" <bob@example.com>',
  'Bcc: Root <root@localhost>',
  'Subject: test',
  '',
  'Hello.',
);

describe('sendMessage$', () => {
  let fake: FakeServer | undefined;
  let real: RealServer | undefined;
  let held: (() => void) | undefined;
  afterEach(async () => {
    held?.();
    held = undefined;
    await fake?.close();
    await real?.close();
    fake = real = undefined;
  });

  /** A ready session on 127.0.0.1:port, kept open until the test ends. */
  async function openSession(port: number): Promise<Session> {
    const opened = await openReadySession(port);
    held = opened.close;
    return opened.session;
  }

  async function sessionWith(script: FakeScript = {}): Promise<Session> {
    fake = await FakeServer.start(script);
    const session = await openSession(fake.port);
    fake.session.commands.length = 0;
    return session;
  }

  const server = (): FakeServer => fake as FakeServer;
  const envelopeLines = (): string[] => server().session.commands.filter((c) => /^(MAIL|RCPT)/.test(c));
  const received = (i = 0): string => defined(server().session.messages[i], `message ${i}`).toString('utf8');

  describe('the envelope from the headers', () => {
    it('sends from From to every To, Bcc and Cc address, display names left out', async () => {
      const session = await sessionWith();
      const { values, error } = await collect(sendMessage$(session, BASIC));
      expect(error).toBeUndefined();
      expect(envelopeLines()).toEqual([
        // BASIC is 181 bytes, its 28-byte Bcc line is not sent.
        'MAIL FROM:<ann@example.com> SIZE=153',
        'RCPT TO:<john@example.com>',
        'RCPT TO:<root@localhost>',
        'RCPT TO:<sally@example.com>',
        'RCPT TO:<bob@example.com>',
      ]);
      expect(values.map((e) => e.type)).toEqual([
        'recipient',
        'recipient',
        'recipient',
        'recipient',
        'progress',
        'sent',
      ]);
    });

    it('removes Bcc from the bytes sent, SIZE counting what is sent, and leaves the caller’s message alone', async () => {
      const session = await sessionWith();
      const message = Buffer.from(BASIC);
      const before = Buffer.from(message);
      await collect(sendMessage$(session, message));
      expect(received()).toBe(BASIC.replace('Bcc: Root <root@localhost>\r\n', ''));
      expect(envelopeLines()[0]).toBe(
        `MAIL FROM:<ann@example.com> SIZE=${defined(server().session.messages[0], 'the message').length}`,
      );
      expect(message.equals(before)).toBe(true);
    });

    it('sends the caller’s bytes as they are when there is no Bcc, with only LF line ends canonicalised', async () => {
      const session = await sessionWith();
      await collect(sendMessage$(session, 'From: a@x.test\nTo: b@x.test\n\nline\n.dot\n'));
      expect(received()).toBe('From: a@x.test\r\nTo: b@x.test\r\n\r\nline\r\n..dot\r\n');
    });

    it('removes every Bcc field, folded ones included, and an empty Bcc', async () => {
      const session = await sessionWith();
      const message = msg(
        'From: a@x.test',
        'Bcc: one@x.test,',
        ' two@x.test',
        'To: b@x.test',
        'bcc:',
        'Subject: s',
        '',
        'body',
      );
      await collect(sendMessage$(session, message));
      expect(received()).toBe(msg('From: a@x.test', 'To: b@x.test', 'Subject: s', '', 'body'));
      expect(envelopeLines().slice(1)).toEqual(['RCPT TO:<b@x.test>', 'RCPT TO:<one@x.test>', 'RCPT TO:<two@x.test>']);
    });

    it('takes the sender from Sender over several From addresses', async () => {
      const session = await sessionWith();
      const message = msg(
        'From: Bernard <bernard@example.com>, Bianca <bianca@example.com>',
        'Sender: "the Sender" <the_rescuers@Rescue-Aid-Society.com>',
        'To: John <john@example.com>',
        '',
        'x',
      );
      await collect(sendMessage$(session, message));
      expect(envelopeLines()[0]).toMatch(/^MAIL FROM:<the_rescuers@Rescue-Aid-Society\.com> /);
    });

    it('lets fromAddr and toAddrs override the headers', async () => {
      const session = await sessionWith();
      await collect(sendMessage$(session, BASIC, 'joe@example.com', 'foo@example.net'));
      await collect(sendMessage$(session, BASIC, undefined, ['x@example.net', 'y@example.net']));
      await collect(sendMessage$(session, BASIC, '', 'z@example.net'));
      expect(envelopeLines().map((l) => l.replace(/ SIZE=\d+$/, ''))).toEqual([
        'MAIL FROM:<joe@example.com>',
        'RCPT TO:<foo@example.net>',
        'MAIL FROM:<ann@example.com>',
        'RCPT TO:<x@example.net>',
        'RCPT TO:<y@example.net>',
        'MAIL FROM:<>',
        'RCPT TO:<z@example.net>',
      ]);
      // An override changes the envelope only: the Bcc field is still removed.
      expect(received(0)).not.toMatch(/^Bcc:/im);
    });

    it('uses the Resent- fields when there is one Resent block, and removes Resent-Bcc', async () => {
      const session = await sessionWith();
      const message = msg(
        'From: holy@grail.net',
        'To: Fred <fred@example.com>',
        'Cc: ed@example.net',
        'Resent-Date: Thu, 1 Jan 1970 17:42:00 +0000',
        'Resent-From: holy@grail.net',
        'Resent-To: Martha <my_mom@example.com>, Jeff',
        ' <jeff@example.org>',
        'Resent-Bcc: doe@losthope.net',
        '',
        'body',
      );
      await collect(sendMessage$(session, message));
      expect(envelopeLines().slice(1)).toEqual([
        'RCPT TO:<my_mom@example.com>',
        'RCPT TO:<jeff@example.org>',
        'RCPT TO:<doe@losthope.net>',
      ]);
      expect(received()).not.toContain('doe@losthope.net');
      expect(received()).toContain('Resent-To: Martha <my_mom@example.com>, Jeff\r\n <jeff@example.org>\r\n');
    });

    it('refuses a message with two Resent blocks before anything is sent', async () => {
      const session = await sessionWith();
      const message = msg(
        'From: holy@grail.net',
        'To: Fred <fred@example.com>',
        'Resent-Date: Thu, 1 Jan 1970 17:42:00 +0000',
        'Resent-To: holy@grail.net',
        'Resent-Date: Fri, 2 Jan 1970 17:42:00 +0000',
        'Resent-To: doe@losthope.net',
        '',
        'body',
      );
      const { error } = await collect(sendMessage$(session, message));
      expect(error).toBeInstanceOf(SMTPInvalidArgumentError);
      expect((error as Error).message).toMatch(/more than one 'Resent-' header block/);
      expect(server().session.commands).toEqual([]);
    });

    it.each([
      ['no sender', msg('To: b@x.test', '', 'x'), /no sender/],
      ['no recipient', msg('From: a@x.test', 'Bcc:', '', 'x'), /no recipients/],
      ['only an empty group', msg('From: a@x.test', 'To: undisclosed-recipients:;', '', 'x'), /no recipients/],
      ['an unparsable To', msg('From: a@x.test', 'To: <<b@x.test', '', 'x'), /not a valid address list/],
      [
        'a header block over the bound',
        `From: a@x.test\r\nTo: b@x.test\r\nX-Big: ${'y'.repeat(300 * 1024)}\r\n\r\nx`,
        /header block too large/,
      ],
    ])('refuses a message with %s before anything is sent', async (_what, message, problem) => {
      const session = await sessionWith();
      const { error } = await collect(sendMessage$(session, message));
      expect(error).toBeInstanceOf(SMTPInvalidArgumentError);
      expect((error as Error).message).toMatch(problem);
      expect(server().session.commands).toEqual([]);
    });
  });

  describe('a bare CR in the header block', () => {
    // The body encoder sends a bare CR as CRLF: the field after it is a field for every recipient.
    const HIDDEN = 'From: a@x.test\r\nTo: b@x.test\r\nSubject: hi\rBcc: x@y.test\r\n\r\nHello.\r\n';
    const SENT = 'From: a@x.test\r\nTo: b@x.test\r\nSubject: hi\r\n\r\nHello.\r\n';

    it.each([
      ['in memory', (): Body => HIDDEN],
      ['streamed byte by byte', (): Body => Readable.from([...Buffer.from(HIDDEN)].map((b) => Buffer.from([b])))],
      [
        'streamed, the CR ending a chunk',
        (): Body => {
          const cut = HIDDEN.indexOf('\rBcc') + 1;
          return Readable.from([Buffer.from(HIDDEN.slice(0, cut)), Buffer.from(HIDDEN.slice(cut))]);
        },
      ],
    ])('ends the field before a Bcc, which is a recipient and never reaches the wire (%s)', async (_name, message) => {
      const session = await sessionWith();
      const { error } = await collect(sendMessage$(session, message()));
      expect(error).toBeUndefined();
      expect(envelopeLines().filter((l) => l.startsWith('RCPT'))).toEqual(['RCPT TO:<b@x.test>', 'RCPT TO:<x@y.test>']);
      expect(server().text()).not.toContain('Bcc');
      expect(received()).toBe(SENT);
    });
  });

  describe('addresses on the wire', () => {
    // Each address is the whole value of a To field (or, for CR/LF, a toAddrs override).
    it.each([
      ['a comment around the address', '(boss) joe@example.com (at work)', 'RCPT TO:<joe@example.com>'],
      ['a quoted local part with an @', '"x@evil"@good.example', 'RCPT TO:<"x@evil"@good.example>'],
      [
        'a quoted local part with a blank, folded',
        '"john\r\n smith"@example.com',
        'RCPT TO:<"john smith"@example.com>',
      ],
      ['an encoded-word display name', '=?UTF-8?B?w4lsw6luZQ==?= <elene@example.com>', 'RCPT TO:<elene@example.com>'],
      ['a group', 'team: a@example.com, b@example.com;', 'RCPT TO:<a@example.com>'],
    ])('sends %s safely', async (_what, address, rcpt) => {
      const session = await sessionWith();
      const { error } = await collect(sendMessage$(session, msg('From: a@x.test', `To: ${address}`, '', 'x')));
      expect(error).toBeUndefined();
      expect(envelopeLines()).toContain(rcpt);
      expect(envelopeLines()[0]).not.toContain('SMTPUTF8');
    });

    it('sends an IDN domain as A-labels, without SMTPUTF8', async () => {
      // Given as toAddrs: in a To field its U-label would be UTF-8 in a header, which needs SMTPUTF8.
      const session = await sessionWith();
      const { error } = await collect(
        sendMessage$(session, msg('From: a@x.test', 'To: x@x.test', '', 'x'), undefined, ['joe@bücher.example']),
      );
      expect(error).toBeUndefined();
      expect(envelopeLines().map((l) => l.replace(/ SIZE=\d+$/, ''))).toEqual([
        'MAIL FROM:<a@x.test>',
        'RCPT TO:<joe@xn--bcher-kva.example>',
      ]);
    });

    it.each([
      ['a quoted > that would end the path early', '"a@x> ORCPT=rfc822;b"@d.example'],
      ['a source route', '<@relay.example:joe@example.com>'],
      ['a quoted CR LF that is not a fold', '"a\r\nRCPT TO:<evil@x.test>"@d.example'],
      ['an address literal that is not an IP', 'joe@[x:y]'],
      ['a parameter after the address', 'joe@example.com> NOTIFY=NEVER'],
    ])('refuses %s in a header, sending nothing', async (_what, address) => {
      const session = await sessionWith();
      const { error } = await collect(sendMessage$(session, msg('From: a@x.test', `To: ${address}`, '', 'x')));
      expect(error).toBeInstanceOf(SMTPInvalidArgumentError);
      expect(server().session.commands).toEqual([]);
    });

    it.each([
      ['CR LF in quotes', '"a\r\nRCPT TO:<evil@x.test>"@d.example'],
      ['a bare LF', 'a@d.example\nRCPT TO:<evil@x.test>'],
      ['a quoted >', '"a@x> ORCPT=rfc822;b"@d.example'],
    ])('refuses %s in toAddrs, sending nothing', async (_what, address) => {
      const session = await sessionWith();
      const { error } = await collect(sendMessage$(session, BASIC, undefined, [address]));
      expect(error).toBeInstanceOf(SMTPInvalidArgumentError);
      expect(server().session.commands).toEqual([]);
    });
  });

  describe('SMTPUTF8', () => {
    const UTF8 = msg(
      'From: Páolo <főo@bar.com>',
      'To: Dinsdale <Dinsdale@Stagnation.com>',
      'Subject: Nudge nudge, wink, wink 😉',
      '',
      'oh là là',
    );

    it('is not asked for when every address and header field is ASCII', async () => {
      const session = await sessionWith({ extensions: ['8BITMIME', 'SMTPUTF8'] });
      await collect(
        sendMessage$(session, msg('From: =?UTF-8?Q?P=C3=A1olo?= <paolo@bar.com>', 'To: b@x.test', '', 'là')),
      );
      expect(envelopeLines()[0]).toBe('MAIL FROM:<paolo@bar.com> BODY=8BITMIME');
    });

    it('adds SMTPUTF8 and BODY=8BITMIME for a non-ASCII local part when offered', async () => {
      const session = await sessionWith({ extensions: ['8BITMIME', 'SMTPUTF8'] });
      const { error } = await collect(sendMessage$(session, UTF8));
      expect(error).toBeUndefined();
      expect(envelopeLines()).toEqual([
        'MAIL FROM:<főo@bar.com> BODY=8BITMIME SMTPUTF8',
        'RCPT TO:<Dinsdale@Stagnation.com>',
      ]);
      expect(received()).toBe(UTF8);
    });

    it('fails with SMTPNotSupportedError when the server does not offer it, before MAIL', async () => {
      const session = await sessionWith({ extensions: ['8BITMIME'] });
      const { error } = await collect(sendMessage$(session, UTF8));
      expect(error).toBeInstanceOf(SMTPNotSupportedError);
      expect(server().session.commands).toEqual([]);
    });

    it('does not accumulate options when the same options are passed twice', async () => {
      const session = await sessionWith({ extensions: ['8BITMIME', 'SMTPUTF8', 'DSN'] });
      const mailOptions = ['SMTPUTF8'];
      const structured = { ret: 'HDRS' as const };
      await collect(sendMessage$(session, UTF8, undefined, undefined, mailOptions));
      await collect(sendMessage$(session, UTF8, undefined, undefined, mailOptions));
      await collect(sendMessage$(session, UTF8, undefined, undefined, structured));
      await collect(sendMessage$(session, UTF8, undefined, undefined, structured));
      const mails = envelopeLines().filter((l) => l.startsWith('MAIL'));
      expect(mails).toEqual([
        'MAIL FROM:<főo@bar.com> BODY=8BITMIME SMTPUTF8',
        'MAIL FROM:<főo@bar.com> BODY=8BITMIME SMTPUTF8',
        'MAIL FROM:<főo@bar.com> BODY=8BITMIME SMTPUTF8 RET=HDRS',
        'MAIL FROM:<főo@bar.com> BODY=8BITMIME SMTPUTF8 RET=HDRS',
      ]);
      expect(mailOptions).toEqual(['SMTPUTF8']);
      expect(structured).toEqual({ ret: 'HDRS' });
    });

    it('keeps the caller’s own BODY parameter', async () => {
      const session = await sessionWith({ extensions: ['8BITMIME', 'SMTPUTF8'] });
      await collect(sendMessage$(session, UTF8, undefined, undefined, ['BODY=7BIT']));
      expect(envelopeLines()[0]).toBe('MAIL FROM:<főo@bar.com> SMTPUTF8 BODY=7BIT');
    });
  });

  describe('streamed messages', () => {
    /** The message in small chunks, so the header ends in the middle of one. */
    async function* inChunks(text: string, size = 7): AsyncGenerator<Uint8Array> {
      const bytes = Buffer.from(text);
      for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
    }

    it('sends a Readable with Bcc removed and no SIZE', async () => {
      const session = await sessionWith();
      const { error } = await collect(sendMessage$(session, Readable.from(inChunks(BASIC))));
      expect(error).toBeUndefined();
      expect(envelopeLines()[0]).toBe('MAIL FROM:<ann@example.com>');
      expect(received()).toBe(BASIC.replace('Bcc: Root <root@localhost>\r\n', ''));
    });

    it('sends an Observable message', async () => {
      const session = await sessionWith();
      const source = new Subject<Uint8Array>();
      const done = collect(sendMessage$(session, source));
      for await (const chunk of inChunks(BASIC)) source.next(chunk);
      source.complete();
      expect((await done).error).toBeUndefined();
      expect(received()).toBe(BASIC.replace('Bcc: Root <root@localhost>\r\n', ''));
    });

    it('sends BDAT chunks with CHUNKING', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'CHUNKING', '8BITMIME'] });
      const { error } = await collect(sendMessage$(session, inChunks(BASIC)));
      expect(error).toBeUndefined();
      expect(Buffer.concat(server().session.messages).toString()).toBe(
        BASIC.replace('Bcc: Root <root@localhost>\r\n', ''),
      );
    });

    /** A header, then 4 MiB of body, counting what is read past the header and whether it was released. */
    function probe() {
      const state = { pulled: 0, released: false };
      async function* message(): AsyncGenerator<Uint8Array> {
        try {
          yield Buffer.from('From: a@x.test\r\nTo: b@x.test\r\n\r\n');
          // Finite, so that a regression fails the test instead of filling memory.
          for (let i = 0; i < 64; i++) {
            state.pulled++;
            yield Buffer.alloc(64 * 1024, 0x61);
          }
        } finally {
          state.released = true;
        }
      }
      return { message: message(), state };
    }

    it('reads nothing past the header while the envelope is exchanged, and releases the source when it fails', async () => {
      const session = await sessionWith({ handlers: { RCPT: '550 5.1.1 no such user' } });
      const { message, state } = probe();
      const { error } = await collect(sendMessage$(session, message));
      expect(error).toBeInstanceOf(SMTPRecipientsRefused);
      expect(state.pulled).toBe(0);
      await server().until(() => state.released);
    });

    it('releases the source when unsubscribed during the envelope, having read nothing past the header', async () => {
      const session = await sessionWith({ handlers: { DATA: { stall: true } } });
      const { message, state } = probe();
      const subscription = sendMessage$(session, message).subscribe({ error: () => undefined });
      await server().received('DATA');
      subscription.unsubscribe();
      await server().until(() => state.released);
      expect(state.pulled).toBe(0);
    });

    it('errors rather than send a truncated message when the source fails mid-body', async () => {
      const session = await sessionWith();
      async function* message(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('From: a@x.test\r\nTo: b@x.test\r\n\r\nfirst line\r\n');
        throw new Error('disk gone');
      }
      const { values, error } = await collect(sendMessage$(session, message()));
      expect((error as Error).message).toBe('disk gone');
      expect(values.map((e) => e.type)).not.toContain('sent');
      expect(server().session.messages).toEqual([]);
    });
  });

  describe('against smtp-server', () => {
    it('delivers to every recipient, with no Bcc in what the server stored', async () => {
      real = await startSmtpServer();
      const session = await openSession(real.port);
      const { error } = await collect(sendMessage$(session, BASIC));
      expect(error).toBeUndefined();
      expect(real.messages).toHaveLength(1);
      expect(real.messages[0]).toMatchObject({
        from: 'ann@example.com',
        to: ['john@example.com', 'root@localhost', 'sally@example.com', 'bob@example.com'],
      });
      expect(real.messages[0]?.body.toString()).not.toMatch(/^Bcc:/im);
    });

    it('streams 100 MiB generated lazily, received intact, with bounded memory (never read far ahead of the server)', async () => {
      const BODY_BYTES = 100 * 1024 * 1024;
      const LINE = Buffer.from(`${'0123456789abcdef'.repeat(4)}\r\n`); // 66 bytes, no leading dot
      const header = Buffer.from(msg('From: a@x.test', 'To: b@x.test', 'Bcc: hidden@x.test', 'Subject: big', ''));
      const expected = createHash('sha256');
      expected.update(msg('From: a@x.test', 'To: b@x.test', 'Subject: big', ''));
      let expectedBytes = header.length - 'Bcc: hidden@x.test\r\n'.length;
      let aheadPeak = 0;
      async function* message(): AsyncGenerator<Uint8Array> {
        yield header;
        const block = Buffer.concat(Array.from({ length: 1000 }, () => LINE)); // 66,000 bytes
        for (let sent = 0; sent < BODY_BYTES; sent += block.length) {
          // What the client holds: taken from the message, not yet at the server.
          aheadPeak = Math.max(aheadPeak, expectedBytes - seen.bytes);
          expected.update(block);
          expectedBytes += block.length;
          yield Buffer.from(block); // a fresh buffer each time, as a file or socket gives
        }
      }
      const seen = { bytes: 0, hash: '' };
      real = await startSmtpServer({
        onData(stream, _session, callback) {
          const hash = createHash('sha256');
          stream.on('data', (chunk: Buffer) => {
            seen.bytes += chunk.length;
            hash.update(chunk);
          });
          stream.on('end', () => {
            seen.hash = hash.digest('hex');
            callback();
          });
        },
      });
      const session = await openSession(real.port);
      let progress = 0;
      const { error } = await collect(sendMessage$(session, message()).pipe(tap(() => progress++)));
      expect(error).toBeUndefined();
      expect(progress).toBeGreaterThan(300);
      expect(seen.bytes).toBe(expectedBytes);
      expect(seen.hash).toBe(expected.digest('hex'));
      // A buffered message would be read 100 MiB ahead; streaming holds a few socket buffers. Unlike
      // a memory delta, this does not depend on when the garbage collector runs.
      expect(aheadPeak).toBeLessThan(16 * 1024 * 1024);
    }, 120_000);
  });
});
