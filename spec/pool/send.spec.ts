import { lastValueFrom, toArray } from 'rxjs';
import { SMTPPossiblyDeliveredError, SMTPRecipientsRefused } from '../../lib/errors';
import { classifyFailure } from '../../lib/pool/outcome';
import { SMTPPool } from '../../lib/pool/pool';
import { sendAll$ } from '../../lib/pool/send-all';
import { FakeSession } from '../helpers/fake-server';
import { startSmtpServer } from '../helpers/smtp-server';
import { ManualClock } from './manual-clock';
import { BODY, Bench, until, verbs } from './setup';

const count = (sessions: readonly FakeSession[], verb: string) =>
  sessions.reduce((n, s) => n + verbs(s.commands).filter((v) => v === verb).length, 0);
const bodies = (sessions: readonly FakeSession[]) =>
  sessions.reduce((n, s) => n + s.messages.filter((m) => m.toString() === BODY).length, 0);
const message = (to: string | string[] = 'b@x.test', id?: number) => ({ from: 'a@x.test', to, body: BODY, id });
const outcomeOf = (pool: SMTPPool, to?: string | string[]) => lastValueFrom(pool.send$(message(to)));

describe('SMTPPool.send$', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());
  const retry = { attempts: 3, backoffMs: 1 };

  it('reports a sent message with its reply, refused recipients and attempts', async () => {
    const fake = await bench.fake({
      handlers: { RCPT: (l) => (l.includes('bad@') ? '550 5.1.1 no' : '250 2.1.5 ok') },
    });
    const outcome = await outcomeOf(bench.pool(fake.port), ['good@x.test', 'bad@x.test']);
    expect(outcome).toMatchObject({
      status: 'sent',
      reply: { code: 250 },
      refused: { 'bad@x.test': { code: 550 } },
      attempts: 1,
    });
  });

  describe('beforeEnd', () => {
    it('runs in each attempt before the dot; a rejection fails the message at once, unsent and not retried', async () => {
      const fake = await bench.fake({});
      let calls = 0;
      const refusal = new Error('marker not recorded');
      const outcome = await lastValueFrom(
        bench.pool(fake.port, { retry }).send$({
          ...message(),
          beforeEnd: () => {
            calls++;
            return Promise.reject(refusal);
          },
        }),
      );
      expect(outcome).toMatchObject({ status: 'failed', attempts: 1, error: refusal });
      expect(calls).toBe(1);
      expect(bodies(fake.sessions)).toBe(0);
    });

    it("is called once per attempt, each time before that attempt's dot", async () => {
      let tries = 0;
      const fake = await bench.fake({
        handlers: { '.': () => (++tries === 1 ? '451 4.3.0 later' : '250 2.0.0 queued') },
      });
      const dotsAtCall: number[] = [];
      const outcome = await lastValueFrom(
        bench.pool(fake.port, { retry }).send$({
          ...message(),
          beforeEnd: () => {
            dotsAtCall.push(tries);
            return Promise.resolve();
          },
        }),
      );
      expect(outcome).toMatchObject({ status: 'sent', attempts: 2 });
      expect(dotsAtCall).toEqual([0, 1]);
    });
  });

  it('hands each event of each try to onEvent, in wire order, and emits only the outcome', async () => {
    let tries = 0;
    const fake = await bench.fake({
      handlers: {
        RCPT: (l) => (l.includes('bad@') ? '550 5.1.1 no' : '250 2.1.5 ok'),
        '.': () => (++tries === 1 ? '451 4.3.0 later' : '250 2.0.0 queued'),
      },
    });
    const events: string[] = [];
    const emitted = await lastValueFrom(
      bench
        .pool(fake.port, { retry })
        .send$({
          ...message(['good@x.test', 'bad@x.test']),
          onEvent: (e) => events.push(e.type === 'recipient' ? `${e.recipient} ${String(e.accepted)}` : e.type),
        })
        .pipe(toArray()),
    );
    expect(emitted.map((o) => o.status)).toEqual(['sent']);
    const attempt = ['good@x.test true', 'bad@x.test false', 'progress'];
    expect(events).toEqual([...attempt, ...attempt, 'sent']);
  });

  describe('retries', () => {
    it('retries a 4xx with exponential backoff, and gives up after `attempts` tries', async () => {
      const clock = new ManualClock();
      const fake = await bench.fake({ handlers: { MAIL: '451 4.3.0 try later' } });
      const pool = bench.pool(fake.port, {
        retry: { attempts: 3, backoffMs: 100 },
        scheduler: clock,
        idleTimeout: Infinity,
      });
      const outcome = lastValueFrom(pool.send$(message()));
      await until(() => count(fake.sessions, 'RSET') === 1);
      await until(() => clock.nextAt !== undefined);
      expect(clock.nextAt).toBe(100);
      clock.advance(100);
      await until(() => count(fake.sessions, 'RSET') === 2);
      await until(() => clock.nextAt !== undefined);
      expect(clock.nextAt).toBe(300);
      clock.advance(200);
      expect(await outcome).toMatchObject({ status: 'failed', attempts: 3, error: { smtpCode: 451 } });
      expect(count(fake.sessions, 'MAIL')).toBe(3);
    });

    it('caps the backoff at maxBackoffMs', async () => {
      const clock = new ManualClock();
      const fake = await bench.fake({ handlers: { MAIL: '421 4.3.0 busy' } });
      const pool = bench.pool(fake.port, {
        retry: { attempts: 3, backoffMs: 100, maxBackoffMs: 150 },
        scheduler: clock,
        idleTimeout: Infinity,
      });
      const outcome = lastValueFrom(pool.send$(message()));
      await until(() => clock.nextAt === 100);
      clock.advance(100);
      await until(() => clock.nextAt !== undefined && clock.nextAt > 100);
      expect(clock.nextAt).toBe(250);
      clock.advance(150);
      expect(await outcome).toMatchObject({ status: 'failed', attempts: 3 });
    });

    it('sends once the 4xx clears', async () => {
      let tries = 0;
      const fake = await bench.fake({ handlers: { MAIL: () => (++tries < 3 ? '452 4.3.1 full' : '250 2.1.0 Ok') } });
      const outcome = await outcomeOf(bench.pool(fake.port, { retry }));
      expect(outcome).toMatchObject({ status: 'sent', attempts: 3 });
      // A refused MAIL's pipelined DATA is ended with a lone dot: only one body reached the server.
      expect(bodies(fake.sessions)).toBe(1);
    });

    it('retries when every recipient got a 4xx', async () => {
      let tries = 0;
      const fake = await bench.fake({ handlers: { RCPT: () => (++tries <= 2 ? '450 4.2.1 busy' : '250 2.1.5 ok') } });
      const outcome = await outcomeOf(bench.pool(fake.port, { retry }), ['b@x.test', 'c@x.test']);
      expect(outcome).toMatchObject({ status: 'sent', attempts: 2 });
    });

    it('retries a connection lost before the body on a new connection', async () => {
      let tries = 0;
      const fake = await bench.fake({ handlers: { RCPT: () => (++tries === 1 ? { close: true } : '250 2.1.5 ok') } });
      const outcome = await outcomeOf(bench.pool(fake.port, { retry }));
      expect(outcome).toMatchObject({ status: 'sent', attempts: 2 });
      expect(fake.sessions).toHaveLength(2);
    });

    it('reads a fresh body from a body function on each attempt', async () => {
      let tries = 0;
      let bodies = 0;
      const fake = await bench.fake({
        handlers: { '.': () => (++tries === 1 ? '451 4.3.0 later' : '250 2.0.0 queued') },
      });
      const pool = bench.pool(fake.port, { retry });
      const outcome = await lastValueFrom(
        pool.send$({ from: 'a@x.test', to: 'b@x.test', body: () => (bodies++, BODY) }),
      );
      expect(outcome).toMatchObject({ status: 'sent', attempts: 2 });
      expect(bodies).toBe(2);
    });
  });

  describe('never retries', () => {
    it('a 5xx: refused after one attempt', async () => {
      const fake = await bench.fake({ handlers: { MAIL: '550 5.7.1 go away' } });
      const outcome = await outcomeOf(bench.pool(fake.port, { retry }));
      expect(outcome).toMatchObject({ status: 'refused', attempts: 1, error: { smtpCode: 550 } });
      expect(count(fake.sessions, 'MAIL')).toBe(1);
    });

    it('recipients refused with a mix of 4xx and 5xx', async () => {
      const fake = await bench.fake({
        handlers: { RCPT: (l) => (l.includes('b@') ? '450 4.2.1 busy' : '550 5.1.1 no') },
      });
      const outcome = await outcomeOf(bench.pool(fake.port, { retry }), ['b@x.test', 'c@x.test']);
      expect(outcome).toMatchObject({ status: 'refused', attempts: 1 });
      expect(outcome.status !== 'sent' && outcome.error).toBeInstanceOf(SMTPRecipientsRefused);
    });

    it('a partial refusal without a retry policy: sent, the 4xx recipient reported as deferred and not resent', async () => {
      const fake = await bench.fake({
        handlers: { RCPT: (l) => (l.includes('b@') ? '450 4.2.1 busy' : '250 2.1.5 ok') },
      });
      const outcome = await outcomeOf(bench.pool(fake.port), ['b@x.test', 'c@x.test']);
      expect(outcome).toMatchObject({
        status: 'sent',
        attempts: 1,
        refused: { 'b@x.test': { code: 450 } },
        deferred: { 'b@x.test': { code: 450 } },
      });
      expect(count(fake.sessions, 'MAIL')).toBe(1);
    });

    it('a message possibly delivered (the connection lost after the body)', async () => {
      const fake = await bench.fake({ handlers: { '.': { close: true } } });
      const outcome = await outcomeOf(bench.pool(fake.port, { retry }));
      expect(outcome).toMatchObject({ status: 'possibly-delivered', attempts: 1 });
      expect(outcome.status !== 'sent' && outcome.error).toBeInstanceOf(SMTPPossiblyDeliveredError);
      expect(bodies(fake.sessions)).toBe(1);
    });

    it('a message that cannot be put on the wire', async () => {
      const fake = await bench.fake();
      const outcome = await outcomeOf(bench.pool(fake.port, { retry }), 'b@x.test\r\nRCPT TO:<c@x.test>');
      expect(outcome).toMatchObject({ status: 'refused', attempts: 1, error: { code: 'ERR_SMTP_INVALID_ARGUMENT' } });
      expect(count(fake.sessions, 'RCPT')).toBe(0);
    });

    it('after close: a message waiting for its retry fails', async () => {
      const clock = new ManualClock();
      const fake = await bench.fake({ handlers: { MAIL: '451 4.3.0 later' } });
      const pool = bench.pool(fake.port, { retry: { attempts: 5, backoffMs: 1_000 }, scheduler: clock });
      const outcome = lastValueFrom(pool.send$(message()));
      await until(() => clock.nextAt === 1_000);
      await pool.close();
      clock.advance(1_000);
      expect(await outcome).toMatchObject({ status: 'failed', attempts: 1, error: { smtpCode: 451 } });
    });
  });
});

describe('classifyFailure', () => {
  it('sorts errors by what they mean for the message', () => {
    const r = (code: number) => ({ code, message: '', lines: [] });
    expect(classifyFailure(new SMTPRecipientsRefused({ a: r(450), b: r(451) }))).toEqual({
      status: 'failed',
      transient: true,
    });
    expect(classifyFailure(new SMTPRecipientsRefused({ a: r(450), b: r(550) }))).toEqual({
      status: 'refused',
      transient: false,
    });
    expect(classifyFailure(new SMTPRecipientsRefused({}))).toEqual({ status: 'refused', transient: false });
    expect(classifyFailure(new TypeError('boom'))).toEqual({ status: 'failed', transient: false });
  });
});

describe('SMTPPool against smtp-server', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('delivers every message once and reports each one', async () => {
    const server = await startSmtpServer({
      hideSTARTTLS: true,
      onRcptTo(address, _session, callback) {
        callback(
          address.address.startsWith('bad')
            ? Object.assign(new Error('no such user'), { responseCode: 550 })
            : undefined,
        );
      },
    });
    bench.adopt(server);
    const pool = bench.pool(server.port, { maxConnections: 3 });
    const messages = Array.from({ length: 40 }, (_, i) => message(i % 10 === 9 ? 'bad@x.test' : `r${i}@x.test`, i));
    const outcomes = await lastValueFrom(sendAll$(pool, messages).pipe(toArray()));
    expect(outcomes.map((o) => o.message.id).sort((a, b) => Number(a) - Number(b))).toEqual(messages.map((m) => m.id));
    expect(outcomes.filter((o) => o.status === 'sent')).toHaveLength(36);
    expect(outcomes.filter((o) => o.status === 'refused')).toHaveLength(4);
    expect(server.messages).toHaveLength(36);
  });
});
