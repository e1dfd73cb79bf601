import { filter, firstValueFrom, lastValueFrom, mergeMap, range, timeout, toArray } from 'rxjs';
import { PoolEvent, PoolLogger, PoolStats } from '../../lib/pool/monitor';
import { PoolMessage } from '../../lib/pool/outcome';
import { sendAll$ } from '../../lib/pool/send-all';
import { defined } from '../helpers/defined';
import { BODY, Bench } from './setup';

/** A logger that keeps what it is given, pino-style. */
function recordingLogger(): PoolLogger & { readonly lines: { level: string; fields: object; text: string }[] } {
  const lines: { level: string; fields: object; text: string }[] = [];
  const at = (level: string) => (fields: object, text: string) => void lines.push({ level, fields, text });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const message = (id: number, from = 'a@x.test'): PoolMessage<number> => ({ from, to: 'b@x.test', body: BODY, id });

describe('SMTPPool observability', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('stats$ starts with the current state and shows the last change, sampled rather than per message', async () => {
    const fake = await bench.fake();
    const pool = bench.pool(fake.port, { maxConnections: 4 });
    const seen: PoolStats[] = [];
    const watching = pool.stats$.subscribe((s) => seen.push(s));
    expect(seen).toEqual([
      {
        connections: 0,
        queued: 0,
        running: 0,
        sent: 0,
        refused: 0,
        failed: 0,
        possiblyDelivered: 0,
        ratePerSec: 0,
        throttleLevel: 0,
      },
    ]);

    const MESSAGES = 400;
    // Subscribed before the run: its first value is the idle state, so a match is a sample taken after the last change.
    const settled$ = firstValueFrom(
      pool.stats$.pipe(
        filter((s) => s.sent === MESSAGES && s.running === 0),
        timeout(5_000),
      ),
    );
    await lastValueFrom(
      range(0, MESSAGES).pipe(
        mergeMap(() => pool.sendmail$('a@x.test', 'b@x.test', BODY), 16),
        toArray(),
      ),
    );
    const settled = await settled$;
    expect(settled).toMatchObject({ sent: MESSAGES, queued: 0, running: 0, failed: 0 });
    expect(settled.ratePerSec).toBeGreaterThan(0);
    watching.unsubscribe();
    // Each subscription samples on its own timer: a retired connection that closes between the two samples shows
    // in one only. The messages' state is the last change both must show.
    const messagesOf = ({ sent, queued, running, refused, failed, possiblyDelivered }: PoolStats) => ({
      sent,
      queued,
      running,
      refused,
      failed,
      possiblyDelivered,
    });
    expect(messagesOf(defined(seen[seen.length - 1], 'a last sample'))).toEqual(messagesOf(settled));
    // One sample per 100 ms at most, not one per message.
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.length).toBeLessThan(MESSAGES / 10);
    expect(fake.sessions.flatMap((s) => s.messages)).toHaveLength(MESSAGES);
    await pool.close();
  });

  it('stats$ shows the outcome of a message that ends after a quiet spell of more than 100 ms', async () => {
    const fake = await bench.fake({ handlers: { '.': { delayMs: 300, reply: '250 2.0.0 Ok' } } });
    const pool = bench.pool(fake.port, { maxConnections: 1 });
    const sent$ = firstValueFrom(
      pool.stats$.pipe(
        filter((s) => s.sent === 1),
        timeout(3_000),
      ),
    );

    await lastValueFrom(pool.sendmail$('a@x.test', 'b@x.test', BODY));

    await expect(sent$).resolves.toMatchObject({ sent: 1, running: 0 });
    await pool.close();
  });

  it('counts each final outcome once: sent, refused, failed after retries, possibly delivered', async () => {
    const fake = await bench.fake({
      handlers: {
        MAIL: (line) =>
          line.includes('bad@') ? '550 5.7.1 No' : line.includes('later@') ? '451 4.3.0 Local error' : '250 2.1.0 Ok',
        '.': (_line, session) => (session.commands.some((c) => c.includes('lost@')) ? { close: true } : '250 2.0.0 Ok'),
      },
    });
    const pool = bench.pool(fake.port, { maxConnections: 1, retry: { attempts: 2, backoffMs: 1 } });
    const messages = [
      message(1),
      message(2, 'bad@x.test'),
      message(3, 'later@x.test'),
      message(4, 'lost@x.test'),
      message(5),
    ];

    const outcomes = await lastValueFrom(sendAll$(pool, messages).pipe(toArray()));

    expect(outcomes.map((o) => [o.message.id, o.status]).sort()).toEqual([
      [1, 'sent'],
      [2, 'refused'],
      [3, 'failed'],
      [4, 'possibly-delivered'],
      [5, 'sent'],
    ]);
    // Message 3 was tried twice and counts once.
    expect(fake.sessions.flatMap((s) => s.commands).filter((c) => c.includes('later@'))).toHaveLength(2);
    expect(pool.stats).toMatchObject({ sent: 2, refused: 1, failed: 1, possiblyDelivered: 1 });
    await pool.close();
  });

  it('events$ and the logger tell connections opened, closed and failed, and never a secret', async () => {
    const fake = await bench.fake({ extensions: ['PIPELINING', 'AUTH PLAIN'], handlers: { AUTH: '235 2.7.0 Ok' } });
    const logger = recordingLogger();
    const password = 'pa55-w0rd-secret';
    const pool = bench.pool(fake.port, {
      maxConnections: 1,
      logger,
      auth: { user: 'me', password, allowPlaintextAuth: true },
    });
    const events: PoolEvent[] = [];
    pool.events$.subscribe((e) => events.push(e));

    await lastValueFrom(pool.sendmail$('a@x.test', 'b@x.test', BODY));
    await pool.close();

    expect(events).toEqual([
      { type: 'connection-opened', connection: 1 },
      { type: 'connection-closed', connection: 1 },
    ]);
    expect(logger.lines.map((l) => [l.level, l.fields])).toEqual([
      ['info', { event: 'connection-opened', connection: 1 }],
      ['info', { event: 'connection-closed', connection: 1 }],
    ]);
    expect(fake.session.commands.some((c) => c.startsWith('AUTH PLAIN '))).toBe(true);
    const logged = JSON.stringify(logger.lines);
    expect(logged).not.toContain(password);
    expect(logged).not.toContain(Buffer.from(`\0me\0${password}`).toString('base64'));
  });

  it('a connection refused at the greeting is a connection-failed event, logged as a warning with its code', async () => {
    const fake = await bench.fake({ greeting: '554 5.3.2 Not now' });
    const logger = recordingLogger();
    const pool = bench.pool(fake.port, { maxConnections: 1, logger });
    const events: PoolEvent[] = [];
    pool.events$.subscribe((e) => events.push(e));

    await expect(lastValueFrom(pool.sendmail$('a@x.test', 'b@x.test', BODY))).rejects.toMatchObject({
      code: 'ERR_SMTP_CONNECT',
    });

    expect(events).toEqual([
      { type: 'connection-failed', connection: 1, error: expect.objectContaining({ code: 'ERR_SMTP_CONNECT' }) },
    ]);
    expect(logger.lines).toEqual([
      {
        level: 'warn',
        fields: {
          event: 'connection-failed',
          connection: 1,
          code: 'ERR_SMTP_CONNECT',
          error: expect.stringContaining('554'),
        },
        text: expect.any(String),
      },
    ]);
    expect(pool.stats).toMatchObject({ failed: 0, refused: 1 });
  });
});
