import { forkJoin, lastValueFrom } from 'rxjs';
import {
  SMTPAuthenticationError,
  SMTPProtocolError,
  SMTPRecipientsRefused,
  SMTPServerDisconnected,
} from '../../lib/errors';
import { login$ } from '../../lib/session/authenticate';
import { quit$ } from '../../lib/session/quit';
import { Session } from '../../lib/session/session';
import { sendmail$ } from '../../lib/session/sendmail';
import { SessionConfig } from '../../lib/session/open-session';
import { collect } from '../helpers/events';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { openSession } from '../helpers/session';

/*
 * Behaviours of lib/session/ that no other spec pinned down (each describe names the source line
 * whose mutants survived them). Every verdict here is decided by order, never by a time window.
 */

const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';

/** A promise the test settles when it chooses (the fake's `after` action, a body that waits). */
interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

describe('lib/session survivors', () => {
  let fake: FakeServer | undefined;
  let held: { close(): void } | undefined;
  const gates: Gate[] = [];

  afterEach(async () => {
    for (const g of gates.splice(0)) g.open();
    held?.close();
    held = undefined;
    await fake?.close();
    fake = undefined;
  });

  function gate(): Gate {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    const made = { promise, open };
    gates.push(made);
    return made;
  }

  function server(): FakeServer {
    if (!fake) throw new Error('no fake server: call sessionWith() first');
    return fake;
  }

  /** A ready session on a fresh fake server; what the greeting exchanged is forgotten. */
  async function sessionWith(script: FakeScript, config: Partial<SessionConfig> = {}): Promise<Session> {
    fake = await FakeServer.start(script);
    const opened = await openSession(fake.port, { timeout: 2000, ...config });
    held = opened;
    fake.session.commands.length = 0;
    fake.session.messages.length = 0;
    return opened.session;
  }

  /** A streamed body: `first`, then nothing until the test ends (no write can race the server). */
  function waitingBody(first: string | Buffer): AsyncGenerator<Uint8Array> {
    const rest = gate();
    return (async function* () {
      yield Buffer.from(first);
      await rest.promise;
    })();
  }

  /** A body source waiting for its next chunk never times out here: only the server ends it. */
  const patientBody = { timeouts: { dataBlock: 60_000 } };

  describe('sendmail.ts:123 — a transaction whose subscriber is already closed', () => {
    it('writes nothing when forkJoin subscribes it after a sibling failed synchronously', async () => {
      const session = await sessionWith({});
      // The first source errors at once (no recipient), so forkJoin subscribes the second with a
      // subscriber that is already closed: nobody would hear that transaction's outcome.
      const joined = await collect(
        forkJoin([
          sendmail$(session, 'a@x.test', [], MESSAGE),
          sendmail$(session, 'a@x.test', 'orphan@x.test', 'orphan body\r\n'),
        ]),
      );
      expect(joined.error).toBeInstanceOf(SMTPRecipientsRefused);
      // Transactions write in the order they were queued: had the orphan been enqueued, its MAIL
      // and its body would reach the server before this one's.
      const next = await collect(sendmail$(session, 'a@x.test', 'next@x.test', 'next body\r\n'));
      expect(next.error).toBeUndefined();
      expect(server().session.commands.filter((c) => c.startsWith('RCPT'))).toEqual(['RCPT TO:<next@x.test>']);
      expect(server().session.messages.map(String)).toEqual(['next body\r\n']);
    });
  });

  describe('sendmail.ts:315 — DATA answered 354 although every recipient was refused', () => {
    it('closes the connection when the caller leaves while the lone dot awaits its reply', async () => {
      const dotReply = gate();
      const session = await sessionWith({
        handlers: {
          RCPT: '550 5.1.1 no such user',
          '.': { after: dotReply.promise, reply: '554 5.5.1 no valid recipients' },
        },
      });
      const subscription = sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE).subscribe({ error: () => undefined });
      // The lone dot (RFC 2920 §3.1) reached the server: the client is waiting for its reply.
      await server().until(() => server().session.messages.length === 1);
      expect(server().session.messages).toEqual([Buffer.alloc(0)]);
      subscription.unsubscribe();
      expect(session.connection.alive).toBe(false);
      await server().closedSession();
      expect(server().session.commands).not.toContain('RSET');
    });
  });

  describe('sendmail.ts:397 — the connection ends while a streamed body waits for its source', () => {
    it("fails with the connection's own failure: a 421 announced mid-body keeps the server's words", async () => {
      const session = await sessionWith(
        { handlers: { 'DATA-LINE': { close: true, reply: '421 4.3.0 shutting down' } } },
        patientBody,
      );
      const { values, error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', waitingBody('line\r\n')));
      expect(error).toBeInstanceOf(SMTPServerDisconnected);
      expect((error as Error).message).toContain('421 4.3.0 shutting down');
      expect(error).toBe(session.connection.failure);
      expect(values.filter((e) => e.type === 'sent')).toEqual([]);
    });

    it('fails with a protocol error, not a plain disconnection, when an unasked-for 250 ends it', async () => {
      const session = await sessionWith({ handlers: { 'DATA-LINE': '250 2.0.0 nobody asked' } }, patientBody);
      const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', waitingBody('line\r\n')));
      expect(error).toBeInstanceOf(SMTPProtocolError);
      expect(error).toMatchObject({ code: 'ERR_SMTP_PROTOCOL', reply: { code: 250 } });
      expect(error).toBe(session.connection.failure);
    });
  });

  describe('sendmail.ts:527 — a refusal in the middle of the body names the command it refused', () => {
    it('names DATA for a refusal inside a DATA body', async () => {
      const session = await sessionWith(
        { handlers: { 'DATA-LINE': { close: true, reply: '552 5.3.4 Message too big' } } },
        patientBody,
      );
      const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', waitingBody('line\r\n')));
      expect(error).toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 552, command: 'DATA' });
    });

    it('names BDAT for a refusal between two BDAT chunks', async () => {
      // No PIPELINING: each chunk waits for its reply. The first chunk's 250 comes with a 552 nobody
      // asked for, while the body waits for its source: the server refused the message mid-body.
      const session = await sessionWith(
        {
          extensions: ['CHUNKING'],
          handlers: {
            BDAT: (line) => (line === 'BDAT 65536' ? '250 2.0.0 chunk ok\n552 5.3.4 Message too big' : '250 ok'),
          },
        },
        patientBody,
      );
      const { error } = await collect(
        sendmail$(session, 'a@x.test', 'b@x.test', waitingBody(Buffer.alloc(70_000, 'a'))),
      );
      expect(server().session.commands.filter((c) => c.startsWith('BDAT'))).toEqual(['BDAT 65536']);
      expect(error).toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 552, command: 'BDAT' });
    });
  });

  describe('sendmail.ts:596 — the caller leaves while a pipelined envelope is unanswered', () => {
    it('writes no RSET into a DATA the server may have accepted: it waits for the replies, then closes', async () => {
      const mailReply = gate();
      const session = await sessionWith({ handlers: { MAIL: { after: mailReply.promise, reply: '250 2.1.0 Ok' } } });
      const subscription = sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE).subscribe({ error: () => undefined });
      await server().received('DATA');
      subscription.unsubscribe();
      mailReply.open();
      await server().closedSession();
      // Anything written after DATA would have been read as the message's text.
      expect(server().text()).not.toContain('RSET');
      expect(server().session.messages).toEqual([]);
    });

    it('sends RSET at once for a pipelined BDAT envelope: with no DATA in it, no body can be read', async () => {
      // beforeEnd makes pipelined BDAT wait for its envelope's replies instead of stacking the body.
      const mailReply = gate();
      const session = await sessionWith({
        extensions: ['PIPELINING', 'CHUNKING'],
        handlers: { MAIL: { after: mailReply.promise, reply: '250 2.1.0 Ok' } },
      });
      const wire: string[] = [];
      session.connection.debug$.subscribe((e) => {
        if (e.direction !== 'info') wire.push(`${e.direction} ${e.text}`);
      });
      const subscription = sendmail$(
        session,
        'a@x.test',
        'b@x.test',
        MESSAGE,
        {},
        {},
        {
          beforeEnd: () => Promise.resolve(),
        },
      ).subscribe({ error: () => undefined });
      await server().received('RCPT');
      subscription.unsubscribe();
      mailReply.open();
      await server().until(() => wire.filter((l) => l.startsWith('receive')).length === 3);
      // The RSET went out before the envelope's replies came back, not after them.
      expect(wire).toEqual([
        expect.stringMatching(/^send MAIL FROM:<a@x.test>/),
        'send RCPT TO:<b@x.test>',
        'send RSET',
        'receive 250 2.1.0 Ok',
        'receive 250 2.1.5 Ok',
        'receive 250 2.0.0 Ok',
      ]);
      expect(server().session.commands.slice(-1)).toEqual(['RSET']);
      expect(session.connection.open).toBe(true);
    });
  });

  describe('authenticate.ts:121 — when login$ moves on to the next mechanism', () => {
    const trusted = { allowPlaintextAuth: true } as const;

    it('reports a protocol violation during AUTH as itself, not as the lost connection a retry meets', async () => {
      const session = await sessionWith({
        extensions: ['AUTH PLAIN LOGIN'],
        handlers: { AUTH: { raw: 'this is no reply\r\n' } },
      });
      const err = await lastValueFrom(login$(session, 'u', 'p', trusted)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPProtocolError);
      expect(err).toMatchObject({ code: 'ERR_SMTP_PROTOCOL' });
      expect(server().session.commands).toEqual([expect.stringMatching(/^AUTH PLAIN /)]);
    });

    it('tries no other mechanism once the connection is closing: the refusal is the outcome', async () => {
      const refusal = gate();
      const session = await sessionWith({
        extensions: ['AUTH PLAIN LOGIN'],
        handlers: { AUTH: { after: refusal.promise, reply: '535 5.7.8 bad credentials' } },
      });
      const outcome = lastValueFrom(login$(session, 'u', 'p', trusted)).catch((e: unknown) => e);
      await server().received('AUTH PLAIN');
      // The caller says goodbye while AUTH PLAIN is unanswered: QUIT waits for the exchange's turn.
      const goodbye = lastValueFrom(quit$(session));
      expect(session.connection.open).toBe(false);
      refusal.open();
      const err = await outcome;
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(err).toMatchObject({ smtpCode: 535 });
      expect((await goodbye).reply.code).toBe(221);
      await server().closedSession();
      expect(server().text()).not.toContain('AUTH LOGIN');
      expect(server().session.commands).toEqual([expect.stringMatching(/^AUTH PLAIN /), 'QUIT']);
    });
  });
});
