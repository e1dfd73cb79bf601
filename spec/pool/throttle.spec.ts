import { lastValueFrom, toArray } from 'rxjs';
import { SMTPConnectError, SMTPDataError, SMTPRecipientsRefused, SMTPSenderRefused } from '../../lib/errors';
import { PoolEvent } from '../../lib/pool/monitor';
import { PoolMessage } from '../../lib/pool/outcome';
import { sendAll$ } from '../../lib/pool/send-all';
import { THROTTLE_RULES, throttleStage } from '../../lib/pool/throttle';
import { Reply } from '../../lib/wire/reply';
import { startSmtpServer } from '../helpers/smtp-server';
import { Bench } from './setup';

const reply = (code: number, message: string, enhancedStatus?: string): Reply => ({
  code,
  message,
  lines: [message],
  ...(enhancedStatus === undefined ? {} : { enhancedStatus }),
});
const refusedMail = (code: number, text: string, enhanced?: string) =>
  new SMTPSenderRefused(code, text, 'a@x.test', {
    reply: reply(code, enhanced ? `${enhanced} ${text}` : text, enhanced),
  });

/** An smtp-server error with the reply code it should answer with. */
const replyError = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });

const messages = (n: number): PoolMessage<number>[] =>
  Array.from({ length: n }, (_, id) => ({
    from: 'a@x.test',
    to: 'b@x.test',
    body: `Message-ID: <${id}@x.test>\r\n\r\nHello.\r\n`,
    id,
  }));

/** How often each message id reached the server. */
function deliveries(bodies: readonly Buffer[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const body of bodies) {
    const id = Number(/<(\d+)@x\.test>/.exec(body.toString())?.[1]);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

describe('throttle classifier', () => {
  it.each([
    ['a 421 greeting', SMTPConnectError.fromReply(reply(421, 'Too many connections')), 'connect'],
    ['SES rate limit at MAIL', refusedMail(454, 'Throttling failure: Maximum sending rate exceeded'), 'transaction'],
    ['an enhanced 4.7.x', refusedMail(451, 'Sender rate exceeds policy', '4.7.1'), 'transaction'],
    ['Postfix anvil', refusedMail(450, 'Error: too much mail from 127.0.0.1', '4.7.1'), 'transaction'],
    ['try again later after the body', SMTPDataError.fromReply(reply(451, 'Please try again later')), 'transaction'],
    [
      'all recipients rate-limited',
      new SMTPRecipientsRefused({ 'b@x.test': reply(452, 'rate limit reached', '4.7.0') }),
      'transaction',
    ],
  ])('recognises %s', (_name, err, stage) => {
    expect(throttleStage(err, THROTTLE_RULES)).toBe(stage);
  });

  it.each([
    ['a 421 mid-transaction with no policy text', refusedMail(421, 'Service shutting down', '4.3.2')],
    [
      'too many recipients (a message fault)',
      new SMTPRecipientsRefused({ 'b@x.test': reply(452, 'Too many recipients', '4.5.3') }),
    ],
    ['a permanent policy refusal', refusedMail(550, 'rate limit', '5.7.1')],
    ['a full disk', refusedMail(452, 'Insufficient system storage', '4.3.1')],
    ['a lost connection', new Error('socket hang up')],
  ])('does not take %s for a slow-down', (_name, err) => {
    expect(throttleStage(err, THROTTLE_RULES)).toBeUndefined();
  });

  it('takes the rules a caller adds', () => {
    const err = refusedMail(451, 'Greylisted, come back soon', '4.2.0');
    expect(throttleStage(err, THROTTLE_RULES)).toBeUndefined();
    expect(throttleStage(err, [...THROTTLE_RULES, { codes: [451], text: /greylist/i }])).toBe('transaction');
  });
});

describe('SMTPPool adaptive throttling', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('stays near a server that answers 421 past 2 connections: all sent, a bounded number of 421s', async () => {
    const LIMIT = 2;
    const MESSAGES = 600;
    const open = new Set<string>();
    let refusals = 0;
    let peak = 0;
    const server = await startSmtpServer({
      onConnect(session, callback): void {
        if (open.size >= LIMIT) {
          refusals++;
          return callback(replyError(421, 'Too many connections, try again later'));
        }
        open.add(session.id);
        peak = Math.max(peak, open.size);
        callback();
      },
      onClose(session) {
        open.delete(session.id);
      },
    });
    bench.adopt(server);
    const pool = bench.pool(server.port, {
      maxConnections: 8,
      maxMessagesPerConnection: 50,
      throttle: { quietMs: 200 },
    });
    const events: PoolEvent[] = [];
    pool.events$.subscribe((e) => events.push(e));

    const outcomes = await lastValueFrom(sendAll$(pool, messages(MESSAGES)).pipe(toArray()));

    expect(outcomes.filter((o) => o.status === 'sent')).toHaveLength(MESSAGES);
    expect(new Set(outcomes.map((o) => o.message.id)).size).toBe(MESSAGES);
    expect([...deliveries(server.messages.map((m) => m.body)).values()].every((n) => n === 1)).toBe(true);
    expect(server.messages).toHaveLength(MESSAGES);
    expect(peak).toBe(LIMIT);
    // The first burst opens up to 8 at once; after that the target stays near the limit.
    expect(refusals).toBeGreaterThan(0);
    expect(refusals).toBeLessThan(MESSAGES / 20);
    expect(events.some((e) => e.type === 'throttled' && e.connectionTarget <= 4)).toBe(true);
    await pool.close();
  }, 30_000);

  it('paces itself under a server that answers 454 past 20 messages in 200 ms: all sent, a bounded number of 454s', async () => {
    const MESSAGES = 200;
    const accepted: number[] = [];
    let refusals = 0;
    const server = await startSmtpServer({
      onMailFrom(_address, _session, callback): void {
        const now = Date.now();
        while ((accepted[0] ?? now) <= now - 200) accepted.shift();
        if (accepted.length >= 20) {
          refusals++;
          return callback(replyError(454, 'Throttling failure: Maximum sending rate exceeded'));
        }
        accepted.push(now);
        callback();
      },
    });
    bench.adopt(server);
    const pool = bench.pool(server.port, { maxConnections: 4, throttle: { quietMs: 100 } });
    const levels: number[] = [];
    pool.stats$.subscribe((s) => levels.push(s.throttleLevel));

    const outcomes = await lastValueFrom(sendAll$(pool, messages(MESSAGES)).pipe(toArray()));

    expect(outcomes.filter((o) => o.status === 'sent')).toHaveLength(MESSAGES);
    // A requeue after a slow-down is not an attempt.
    expect(outcomes.every((o) => o.attempts === 1)).toBe(true);
    expect([...deliveries(server.messages.map((m) => m.body)).values()].every((n) => n === 1)).toBe(true);
    expect(server.messages).toHaveLength(MESSAGES);
    expect(refusals).toBeGreaterThan(0);
    expect(refusals).toBeLessThan(MESSAGES / 4);
    expect(Math.max(...levels)).toBeGreaterThan(0);
    await pool.close();
  }, 30_000);

  it("keeps its rate when one message in a hundred is told to slow down (a greylisting, not the server's limit)", async () => {
    const MESSAGES = 3_000;
    let mails = 0;
    const fake = await bench.fake({
      handlers: { MAIL: () => (++mails % 100 === 0 ? '451 4.7.1 Please slow down' : '250 2.1.0 Ok') },
    });
    const pool = bench.pool(fake.port, { maxConnections: 4, throttle: { quietMs: 60_000 } });
    const events: PoolEvent[] = [];
    pool.events$.subscribe((e) => events.push(e));

    const outcomes = await lastValueFrom(sendAll$(pool, messages(MESSAGES)).pipe(toArray()));

    expect(outcomes.filter((o) => o.status === 'sent')).toHaveLength(MESSAGES);
    // Requeued, not retried: the 30 slowed-down messages went again without counting an attempt.
    expect(outcomes.every((o) => o.attempts === 1)).toBe(true);
    expect(mails).toBe(MESSAGES + Math.floor(mails / 100));
    // Halving on each of those 30 replies took the pool down to a few messages a second.
    expect(events.filter((e) => e.type === 'throttled')).toEqual([]);
    expect(pool.stats.throttleLevel).toBe(0);
    await pool.close();
  }, 30_000);

  it('requeues a message told to slow down after a growing wait, so one greylisted message does not loop', async () => {
    const fake = await bench.fake({
      handlers: { RCPT: (line) => (line.includes('grey@') ? '450 4.7.1 Greylisted, try again later' : '250 2.1.5 Ok') },
    });
    const pool = bench.pool(fake.port, { maxConnections: 2, throttle: { budgetMs: 1_000, quietMs: 60_000 } });
    const grey: PoolMessage<number> = { from: 'a@x.test', to: 'grey@x.test', body: 'Hi.\r\n', id: -1 };

    const outcomes = await lastValueFrom(sendAll$(pool, [grey, ...messages(200)]).pipe(toArray()));

    expect(outcomes.filter((o) => o.status === 'sent')).toHaveLength(200);
    expect(outcomes.find((o) => o.message.id === -1)).toMatchObject({
      status: 'failed',
      error: { code: 'ERR_SMTP_RECIPIENTS_REFUSED' },
    });
    // The others kept the pace up (one slow-down among many is no limit), so only the message's own
    // wait spaced its tries: 50, 100, 200, 400 ms… a handful in the 1 s budget, not one per round trip.
    expect(pool.stats.throttleLevel).toBe(0);
    const tries = fake.sessions.flatMap((s) => s.commands).filter((c) => c.startsWith('RCPT TO:<grey@')).length;
    expect(tries).toBeGreaterThanOrEqual(4);
    expect(tries).toBeLessThanOrEqual(7);
    await pool.close();
  }, 10_000);

  it('ends a message `failed` once a server that throttles forever has used up its budget', async () => {
    const fake = await bench.fake({
      handlers: { MAIL: '454 4.7.0 Throttling failure: Maximum sending rate exceeded' },
    });
    const pool = bench.pool(fake.port, { maxConnections: 2, throttle: { budgetMs: 300, quietMs: 50 } });

    const outcomes = await lastValueFrom(sendAll$(pool, messages(5)).pipe(toArray()));

    expect(outcomes).toHaveLength(5);
    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({ status: 'failed', error: { code: 'ERR_SMTP_SENDER_REFUSED', smtpCode: 454 } });
    }
    // With MAIL refused, a pipelined DATA may still draw 354: the client ends it at once, with nothing in it.
    expect(fake.sessions.flatMap((s) => s.messages).every((m) => m.length === 0)).toBe(true);
    // Requeued while the budget lasted (more tries than messages), yet bounded by the pace.
    const tries = fake.sessions.flatMap((s) => s.commands).filter((c) => c.startsWith('MAIL')).length;
    expect(tries).toBeGreaterThan(5);
    expect(tries).toBeLessThan(100);
    expect(pool.stats).toMatchObject({ failed: 5, sent: 0 });
    await pool.close();
  }, 10_000);

  it('with `throttle: false` a slow-down is an ordinary transient failure', async () => {
    const fake = await bench.fake({
      handlers: { MAIL: '454 4.7.0 Throttling failure: Maximum sending rate exceeded' },
    });
    const pool = bench.pool(fake.port, { maxConnections: 1, throttle: false });

    const outcomes = await lastValueFrom(sendAll$(pool, messages(2)).pipe(toArray()));

    expect(outcomes.map((o) => [o.status, o.attempts])).toEqual([
      ['failed', 1],
      ['failed', 1],
    ]);
    expect(fake.session.commands.filter((c) => c.startsWith('MAIL'))).toHaveLength(2);
    expect(pool.stats.throttleLevel).toBe(0);
    await pool.close();
  });
});
