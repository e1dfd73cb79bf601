import { NEVER, concat, lastValueFrom, mergeMap, of, range, toArray } from 'rxjs';
import { SMTPPool } from '../../lib/pool/pool';
import { collect } from '../helpers/events';
import { FakeSession } from '../helpers/fake-server';
import { BODY, Bench, verbs } from './setup';

const sendOne = (pool: SMTPPool, to = 'b@x.test') => collect(pool.sendmail$('a@x.test', to, BODY));
const mails = (s: FakeSession) => verbs(s.commands).filter((v) => v === 'MAIL').length;
/** A streamed body that never ends: its transaction holds the write lock for as long as it is subscribed. */
const endless = () => concat(of(Buffer.from('Subject: endless\r\n\r\n')), NEVER);
/** An EHLO reply offering PIPELINING, as the fake's default one does. */
const EHLO_OK = '250-fake.test\n250-PIPELINING\n250 8BITMIME';
const TOO_MANY = { close: true, reply: '421 4.7.0 too many connections' } as const;

/**
 * Issue 11, defect 6: a message that never wrote a byte must not pay for another's fate. Messages
 * waiting for a connection's write lock move to another connection when the one they wait on dies;
 * a fresh connection that fails before use is tried again (on `connectRetry`'s schedule) before the
 * messages waiting for it fail.
 */
describe('SMTPPool requeues messages that never reached the wire', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it.each([1, 2])(
    'moves the messages waiting behind a cancelled one to a fresh connection (maxConnections %i)',
    async (maxConnections) => {
      const fake = await bench.fake();
      const pool = bench.pool(fake.port, { maxConnections, maxInFlightPerConnection: 4 });
      // Four messages, one connection's worth: the first holds the lock mid-body, three wait behind it.
      const first = pool.sendmail$('a@x.test', 'first@x.test', endless()).subscribe({ error: () => undefined });
      const waiting = [1, 2, 3].map((i) => sendOne(pool, `w${i}@x.test`));
      await fake.until(() => fake.sessions[0]?.bytes.some((b) => b.includes('Subject: endless')) === true);
      // Cancelled mid-body: the connection cannot be saved (the server reads a body that never ends).
      first.unsubscribe();
      const results = await Promise.all(waiting);
      expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
      expect(results.map((r) => r.values.at(-1)?.type)).toEqual(['sent', 'sent', 'sent']);
      // The first connection carried only the cancelled message; the others went on a fresh one.
      expect(fake.sessions[0]?.commands.filter((c) => c.startsWith('RCPT'))).toEqual(['RCPT TO:<first@x.test>']);
      expect(fake.sessions.slice(1).reduce((n, s) => n + s.messages.length, 0)).toBe(3);
    },
  );

  it('withdraws a message cancelled while it waits for the write lock: it never reaches the wire', async () => {
    const fake = await bench.fake();
    const pool = bench.pool(fake.port, { maxConnections: 1, maxInFlightPerConnection: 4 });
    const first = pool.sendmail$('a@x.test', 'first@x.test', endless()).subscribe({ error: () => undefined });
    const withdrawn = pool.sendmail$('a@x.test', 'withdrawn@x.test', BODY).subscribe();
    const last = sendOne(pool, 'last@x.test');
    await fake.until(() => fake.sessions[0]?.bytes.some((b) => b.includes('Subject: endless')) === true);
    expect(pool.stats).toMatchObject({ connections: 1, queued: 0, running: 3 });
    withdrawn.unsubscribe();
    expect(pool.stats.running).toBe(2);
    first.unsubscribe();
    expect((await last).error).toBeUndefined();
    const rcpts = fake.sessions.flatMap((s) => s.commands.filter((c) => c.startsWith('RCPT')));
    expect(rcpts).toEqual(['RCPT TO:<first@x.test>', 'RCPT TO:<last@x.test>']);
  });

  it('moves the messages waiting on a connection the server closed to a fresh one; only the one on the wire fails', async () => {
    let mailCount = 0;
    const fake = await bench.fake({ handlers: { MAIL: () => (++mailCount === 2 ? { close: true } : '250 2.1.0 Ok') } });
    const pool = bench.pool(fake.port, { maxConnections: 1, maxInFlightPerConnection: 4 });
    const results = await Promise.all([0, 1, 2, 3].map(() => sendOne(pool)));
    expect(results.map((r) => r.error?.constructor.name)).toEqual([
      undefined,
      'SMTPServerDisconnected',
      undefined,
      undefined,
    ]);
    expect(fake.sessions.map(mails)).toEqual([2, 2]);
  });

  it('tries a fresh connection again when it fails before use, instead of failing every waiting message', async () => {
    // The server still counts the connection the pool just retired, and refuses the next one once.
    let sessions = 0;
    const fake = await bench.fake({ handlers: { EHLO: () => (++sessions === 2 ? TOO_MANY : EHLO_OK) } });
    const pool = bench.pool(fake.port, {
      maxConnections: 1,
      maxMessagesPerConnection: 2,
      connectRetry: { attempts: 3, backoffMs: 1 },
    });
    const events = await lastValueFrom(
      range(0, 6).pipe(
        mergeMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY)),
        toArray(),
      ),
    );
    expect(events.filter((e) => e.type === 'sent')).toHaveLength(6);
    expect(fake.sessions.map(mails)).toEqual([2, 0, 2, 2]);
  });

  it('tries again with the default schedule too', async () => {
    let sessions = 0;
    const fake = await bench.fake({ handlers: { EHLO: () => (++sessions === 1 ? TOO_MANY : EHLO_OK) } });
    const pool = bench.pool(fake.port, { maxConnections: 1 });
    const results = await Promise.all([sendOne(pool), sendOne(pool)]);
    expect(results.map((r) => r.error)).toEqual([undefined, undefined]);
    expect(fake.sessions.map(mails)).toEqual([0, 2]);
  });

  it('is bounded: a server that keeps refusing fails each waiting message after connectRetry.attempts opens', async () => {
    const fake = await bench.fake({ handlers: { EHLO: TOO_MANY } });
    const pool = bench.pool(fake.port, { maxConnections: 1, connectRetry: { attempts: 3, backoffMs: 1 } });
    const results = await Promise.all([sendOne(pool), sendOne(pool), sendOne(pool)]);
    for (const r of results) expect(r.error).toMatchObject({ smtpCode: 421 });
    expect(fake.sessions).toHaveLength(3);
    // The budget is spent per run of failures: the next message gets a fresh one.
    expect((await sendOne(pool)).error).toMatchObject({ smtpCode: 421 });
    expect(fake.sessions).toHaveLength(6);
  });

  it('does not try again when the server refuses for good (a 5xx greeting)', async () => {
    const fake = await bench.fake({ greeting: '554 5.3.2 no service' });
    const pool = bench.pool(fake.port, { maxConnections: 1, connectRetry: { attempts: 3, backoffMs: 1 } });
    const results = await Promise.all([sendOne(pool), sendOne(pool)]);
    for (const r of results) expect(r.error).toMatchObject({ code: 'ERR_SMTP_CONNECT', smtpCode: 554 });
    expect(fake.sessions).toHaveLength(1);
  });

  it('carries on with the connections it has while a fresh one is refused', async () => {
    // The two first connections work; every later one is refused: the queue is served by the two.
    let sessions = 0;
    const fake = await bench.fake({ handlers: { EHLO: () => (++sessions > 2 ? TOO_MANY : EHLO_OK) } });
    const pool = bench.pool(fake.port, { maxConnections: 4, connectRetry: { attempts: 1, backoffMs: 1 } });
    const events = await lastValueFrom(
      range(0, 40).pipe(
        mergeMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY)),
        toArray(),
      ),
    );
    expect(events.filter((e) => e.type === 'sent')).toHaveLength(40);
  });
});
