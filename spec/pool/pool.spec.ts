import { Observable, Subscription, concatMap, from, lastValueFrom, mergeMap, range, take, tap, toArray } from 'rxjs';
import {
  SMTPConnectError,
  SMTPInvalidArgumentError,
  SMTPPossiblyDeliveredError,
  SMTPRecipientsRefused,
  SMTPServerDisconnected,
} from '../../lib/errors';
import { SMTPPool } from '../../lib/pool/pool';
import { SendEvent } from '../../lib/session/sendmail';
import { FakeSession } from '../helpers/fake-server';
import { collect } from '../helpers/events';
import { ManualClock } from './manual-clock';
import { BODY, Bench, until, verbs } from './setup';

const sendOne = (pool: SMTPPool, to = 'b@x.test') => collect(pool.sendmail$('a@x.test', to, BODY));
const mails = (s: FakeSession) => verbs(s.commands).filter((v) => v === 'MAIL').length;

/** Subscribes and keeps the events; `ended` resolves with the error, if any. */
function start(source$: Observable<SendEvent>): {
  events: SendEvent[];
  ended: Promise<unknown>;
  subscription: Subscription;
} {
  const events: SendEvent[] = [];
  let subscription!: Subscription;
  const ended = new Promise<unknown>((resolve) => {
    subscription = source$.subscribe({
      next: (e) => events.push(e),
      error: resolve,
      complete: () => resolve(undefined),
    });
  });
  return { events, ended, subscription };
}

describe('SMTPPool', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('refuses a bad configuration with a typed error, before any connection', () => {
    expect(() => new SMTPPool({ maxConnections: 0 })).toThrow(SMTPInvalidArgumentError);
    expect(() => new SMTPPool({ maxMessagesPerConnection: 1.5 })).toThrow(
      /maxMessagesPerConnection must be a positive integer/,
    );
    expect(() => new SMTPPool({ rateLimit: { messages: 0, perMs: 1000 } })).toThrow(SMTPInvalidArgumentError);
    expect(() => new SMTPPool({ connectRetry: { attempts: 0, backoffMs: 1 } })).toThrow(
      /connectRetry.attempts must be a positive integer/,
    );
  });

  describe('reuse', () => {
    it('sends N messages on at most maxConnections connections, opened lazily', async () => {
      const fake = await bench.fake();
      const pool = bench.pool(fake.port, { maxConnections: 3 });
      expect(fake.sessions).toHaveLength(0);
      const events = await lastValueFrom(
        range(0, 30).pipe(
          mergeMap((i) => pool.sendmail$('a@x.test', `r${i}@x.test`, BODY), 10),
          toArray(),
        ),
      );
      expect(events.filter((e) => e.type === 'sent')).toHaveLength(30);
      expect(fake.sessions.length).toBeGreaterThan(0);
      expect(fake.sessions.length).toBeLessThanOrEqual(3);
      expect(fake.sessions.reduce((n, s) => n + s.messages.length, 0)).toBe(30);
    });

    it('keeps one connection for messages sent one after another', async () => {
      const fake = await bench.fake();
      const pool = bench.pool(fake.port);
      await lastValueFrom(range(0, 5).pipe(concatMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY))));
      expect(fake.sessions).toHaveLength(1);
      expect(mails(fake.session)).toBe(5);
    });

    it('emits the same events as the session-level sendmail$', async () => {
      const fake = await bench.fake({
        handlers: { RCPT: (l) => (l.includes('bad@') ? '550 5.1.1 no' : '250 2.1.5 ok') },
      });
      const pool = bench.pool(fake.port);
      const { values, error } = await collect(pool.sendmail$('a@x.test', ['good@x.test', 'bad@x.test'], BODY));
      expect(error).toBeUndefined();
      expect(values.map((e) => e.type)).toEqual(['recipient', 'recipient', 'progress', 'sent']);
      expect(values[3]).toMatchObject({ type: 'sent', refused: { 'bad@x.test': { code: 550 } } });
    });
  });

  describe('per connection', () => {
    it('says QUIT after maxMessagesPerConnection and opens a fresh connection', async () => {
      const fake = await bench.fake();
      const pool = bench.pool(fake.port, { maxConnections: 1, maxMessagesPerConnection: 3 });
      const events = await lastValueFrom(
        range(0, 7).pipe(
          mergeMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY)),
          toArray(),
        ),
      );
      expect(events.filter((e) => e.type === 'sent')).toHaveLength(7);
      expect(fake.sessions.map(mails)).toEqual([3, 3, 1]);
      // maxConnections counts a connection until its socket closed: the next one opened after the QUIT.
      expect(fake.sessions.slice(0, 2).map((s) => verbs(s.commands).slice(-1))).toEqual([['QUIT'], ['QUIT']]);
    });

    it('says QUIT after idleTimeout without work, and not before', async () => {
      const fake = await bench.fake();
      const clock = new ManualClock();
      const pool = bench.pool(fake.port, { idleTimeout: 1_000, scheduler: clock });
      await sendOne(pool);
      expect(clock.nextAt).toBe(1_000);
      clock.advance(999);
      expect(pool.stats.connections).toBe(1);
      expect(verbs(fake.session.commands)).not.toContain('QUIT');
      clock.advance(1);
      await fake.closedSession(0);
      expect(verbs(fake.session.commands).slice(-1)).toEqual(['QUIT']);
      await until(() => pool.stats.connections === 0);
      expect((await sendOne(pool)).error).toBeUndefined();
      expect(fake.sessions).toHaveLength(2);
    });

    it('counts idleTimeout from the end of the last transaction, not from the first idle moment', async () => {
      const fake = await bench.fake();
      const clock = new ManualClock();
      const pool = bench.pool(fake.port, { idleTimeout: 1_000, scheduler: clock });
      await sendOne(pool);
      clock.advance(600);
      await sendOne(pool);
      // The timer armed at 0 fires at 1,000, finds 400 ms of idleness, and waits for the rest:
      // the connection is still there for the next message.
      clock.advance(400);
      await sendOne(pool);
      expect(fake.sessions).toHaveLength(1);
      clock.advance(999);
      expect(pool.stats.connections).toBe(1);
      clock.advance(1);
      await fake.closedSession(0);
      expect(verbs(fake.session.commands).slice(-1)).toEqual(['QUIT']);
      expect(mails(fake.session)).toBe(3);
    });

    it('reuses the connection after a refused transaction, which the session ended with RSET', async () => {
      const fake = await bench.fake({
        handlers: { RCPT: (l) => (l.includes('bad@') ? '550 5.1.1 no' : '250 2.1.5 ok') },
      });
      const pool = bench.pool(fake.port, { maxConnections: 1 });
      expect((await sendOne(pool, 'bad@x.test')).error).toBeInstanceOf(SMTPRecipientsRefused);
      expect((await sendOne(pool, 'good@x.test')).error).toBeUndefined();
      expect(fake.sessions).toHaveLength(1);
      const seen = verbs(fake.session.commands);
      expect(seen.slice(seen.indexOf('RSET'))).toEqual(['RSET', 'MAIL', 'RCPT', 'DATA']);
    });

    it('never reuses a connection left in an unknown state (a timeout after the body)', async () => {
      let dots = 0;
      const fake = await bench.fake({ handlers: { '.': () => (++dots === 1 ? { stall: true } : '250 2.0.0 queued') } });
      const pool = bench.pool(fake.port, { maxConnections: 1, timeouts: { dataEnd: 300 } });
      expect((await sendOne(pool)).error).toBeInstanceOf(SMTPPossiblyDeliveredError);
      expect((await sendOne(pool)).error).toBeUndefined();
      expect(fake.sessions).toHaveLength(2);
      expect(fake.sessions[1]?.messages).toHaveLength(1);
    });

    it('opens a new connection when the server closed the last one', async () => {
      let dots = 0;
      const fake = await bench.fake({
        handlers: { '.': () => (++dots === 1 ? { close: true, reply: '250 2.0.0 queued, bye' } : '250 2.0.0 queued') },
      });
      const pool = bench.pool(fake.port);
      expect((await sendOne(pool)).error).toBeUndefined();
      await until(() => pool.stats.connections === 0);
      expect((await sendOne(pool)).error).toBeUndefined();
      expect(fake.sessions).toHaveLength(2);
    });

    it('stacks transactions on one connection when the server offers PIPELINING', async () => {
      // The first final reply is held back until the next MAIL: only a stacking client gets it.
      let owed = false;
      const fake = await bench.fake({
        handlers: {
          '.': () => {
            owed = !owed;
            return owed ? { raw: '' } : '250 2.0.0 queued';
          },
          MAIL: () => (owed ? { raw: '250 2.0.0 queued\r\n250 2.1.0 Ok\r\n' } : '250 2.1.0 Ok'),
        },
      });
      const pool = bench.pool(fake.port, {
        maxConnections: 1,
        maxInFlightPerConnection: 2,
        timeouts: { dataEnd: 2_000 },
      });
      const results = await Promise.all([sendOne(pool), sendOne(pool)]);
      expect(results.map((r) => r.error)).toEqual([undefined, undefined]);
      expect(fake.sessions).toHaveLength(1);
    });

    it('runs one transaction at a time on a connection without PIPELINING', async () => {
      const fake = await bench.fake({ extensions: ['8BITMIME'] });
      const pool = bench.pool(fake.port, { maxConnections: 1, maxInFlightPerConnection: 4 });
      const running: number[] = [];
      await lastValueFrom(
        range(0, 6).pipe(
          mergeMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY)),
          tap(() => running.push(pool.stats.running)),
        ),
      );
      expect(Math.max(...running)).toBe(1);
      expect(fake.sessions).toHaveLength(1);
    });
  });

  describe('cancelling', () => {
    it('sends RSET when a sendmail$ is unsubscribed before the body, and reuses the connection', async () => {
      // The reply to the second RCPT comes late: the client is mid-envelope when it leaves, and
      // (no PIPELINING) its RSET waits for that reply.
      const fake = await bench.fake({
        extensions: ['8BITMIME'],
        handlers: { RCPT: (line) => (line.includes('c@') ? { delayMs: 100, reply: '250 2.1.5 Ok' } : '250 2.1.5 Ok') },
      });
      const pool = bench.pool(fake.port, { maxConnections: 1 });
      const first = start(pool.sendmail$('a@x.test', ['b@x.test', 'c@x.test'], BODY));
      await fake.until(() => fake.sessions[0]?.commands.includes('RCPT TO:<c@x.test>') === true);
      first.subscription.unsubscribe();
      expect((await sendOne(pool)).error).toBeUndefined();
      expect(fake.sessions).toHaveLength(1);
      expect(fake.session.messages).toHaveLength(1);
      expect(verbs(fake.session.commands).slice(4)).toEqual(['RSET', 'MAIL', 'RCPT', 'DATA']);
    });

    it('stops a stacked BDAT whose caller leaves in its first progress event: nothing is delivered', async () => {
      const fake = await bench.fake({ extensions: ['PIPELINING', 'CHUNKING'] });
      const pool = bench.pool(fake.port, { maxConnections: 1 });
      const first = await lastValueFrom(pool.sendmail$('a@x.test', 'b@x.test', BODY).pipe(take(1)));
      expect(first).toMatchObject({ type: 'progress' });
      await fake.closedSession();
      expect(fake.session.messages).toEqual([]);
    });

    it('takes a queued message off the queue when it is unsubscribed', async () => {
      const fake = await bench.fake({ extensions: ['8BITMIME'] });
      const pool = bench.pool(fake.port, { maxConnections: 1 });
      const first = start(pool.sendmail$('a@x.test', 'b@x.test', BODY));
      const second = start(pool.sendmail$('a@x.test', 'c@x.test', BODY));
      expect(pool.stats.queued).toBe(2);
      second.subscription.unsubscribe();
      expect(pool.stats.queued).toBe(1);
      expect(await first.ended).toBeUndefined();
      expect(fake.session.commands.filter((c) => c.startsWith('RCPT'))).toEqual(['RCPT TO:<b@x.test>']);
    });
  });

  describe('close and destroy', () => {
    it('close() finishes queued and running messages, says QUIT everywhere, and takes no new message', async () => {
      const fake = await bench.fake();
      const pool = bench.pool(fake.port, { maxConnections: 2 });
      const runs = Array.from({ length: 10 }, (_, i) => start(pool.sendmail$('a@x.test', `r${i}@x.test`, BODY)));
      const closed = pool.close();
      const late = await collect(pool.sendmail$('a@x.test', 'late@x.test', BODY));
      expect(late.error).toBeInstanceOf(SMTPServerDisconnected);
      expect(late.error).toMatchObject({ code: 'ERR_SMTP_POOL_CLOSED' });
      await closed;
      expect(await Promise.all(runs.map((r) => r.ended))).toEqual(Array(10).fill(undefined));
      expect(pool.stats).toMatchObject({ connections: 0, queued: 0, running: 0 });
      await Promise.all(fake.sessions.map((_, i) => fake.closedSession(i)));
      for (const session of fake.sessions) expect(verbs(session.commands).slice(-1)).toEqual(['QUIT']);
      expect(fake.sessions.reduce((n, s) => n + s.messages.length, 0)).toBe(10);
    });

    it('close$ of an unused pool completes at once', async () => {
      const pool = new SMTPPool({ host: '127.0.0.1', port: 1 });
      await expect(collect(pool.close$())).resolves.toEqual({ values: [undefined] });
    });

    it('destroy() fails running messages (possibly delivered after the body) and queued ones, and closes the sockets', async () => {
      const fake = await bench.fake({ extensions: ['8BITMIME'], handlers: { '.': { stall: true } } });
      const pool = bench.pool(fake.port, { maxConnections: 1 });
      const running = start(pool.sendmail$('a@x.test', 'b@x.test', BODY));
      const queued = start(pool.sendmail$('a@x.test', 'c@x.test', BODY));
      await fake.until(() => fake.sessions[0]?.messages.length === 1);
      const reason = new SMTPServerDisconnected('shutting down');
      pool.destroy(reason);
      expect(await running.ended).toBeInstanceOf(SMTPPossiblyDeliveredError);
      expect(await queued.ended).toBe(reason);
      await fake.closedSession(0);
      expect(pool.stats).toMatchObject({ connections: 0, queued: 0, running: 0 });
      expect((await sendOne(pool)).error).toBeInstanceOf(SMTPServerDisconnected);
    });
  });

  describe('when connections cannot be opened', () => {
    it('fails the waiting messages with the greeting refusal', async () => {
      const fake = await bench.fake({ greeting: '554 5.3.2 no service' });
      const pool = bench.pool(fake.port, { maxConnections: 2 });
      const results = await Promise.all([sendOne(pool), sendOne(pool), sendOne(pool)]);
      for (const r of results) expect(r.error).toBeInstanceOf(SMTPConnectError);
    });

    it('fails the waiting messages when nothing listens', async () => {
      const fake = await bench.fake();
      const port = fake.port;
      await fake.close();
      const pool = bench.pool(port, { connectRetry: { attempts: 2, backoffMs: 1 } });
      const results = await Promise.all([sendOne(pool), sendOne(pool)]);
      for (const r of results) expect(r.error).toBeInstanceOf(SMTPServerDisconnected);
    });

    it('serves the queue with the connections it has when the server refuses more', async () => {
      // The fake greets every session alike: from the third on, it answers EHLO with 421 and closes.
      let greeted = 0;
      const limited = await bench.fake({
        handlers: {
          EHLO: () => (++greeted > 2 ? { close: true, reply: '421 4.7.0 too many connections' } : '250 fake.test'),
        },
      });
      const pool = bench.pool(limited.port, { maxConnections: 5 });
      const events = await lastValueFrom(
        range(0, 20).pipe(
          mergeMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY)),
          toArray(),
        ),
      );
      expect(events.filter((e) => e.type === 'sent')).toHaveLength(20);
      // Refused connections are not retried in a tight loop: one round of extra attempts at most.
      expect(limited.sessions.length).toBeLessThanOrEqual(5);
    });
  });

  it('accepts messages as an Observable through mergeMap with any concurrency', async () => {
    const fake = await bench.fake();
    const pool = bench.pool(fake.port, { maxConnections: 2 });
    const sent = await lastValueFrom(
      from(['a', 'b', 'c', 'd', 'e']).pipe(
        mergeMap((name) => pool.sendmail$('a@x.test', `${name}@x.test`, BODY)),
        toArray(),
      ),
    );
    expect(sent.filter((e) => e.type === 'sent')).toHaveLength(5);
  });
});
