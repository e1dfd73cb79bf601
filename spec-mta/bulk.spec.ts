/**
 * Bulk sending over one connection: transactions stacked with mergeMap, every
 * message accounted for by the client and by Postfix.
 */
import { filter, lastValueFrom, map, mergeMap, range, toArray } from 'rxjs';
import { PoolEvent, PoolMessage, SMTPPool, SendEvent, sendAll$, sendmail$, withSession$ } from '../lib';
import { expectNoOpenSockets, message, outcome, token } from './helpers/client';
import { env } from './helpers/env';
import { PostfixLog } from './helpers/observe';
import { plainPort } from './helpers/postfix';

type Sent = Extract<SendEvent, { type: 'sent' }>;

const COUNT = 1000;

describe('bulk sending to Postfix', () => {
  afterEach(() => expectNoOpenSockets());

  it(`sends ${COUNT} messages over one connection with mergeMap, each ending in one sent event, all queued by Postfix`, async () => {
    const log = PostfixLog.mark();
    const run = token('bulk');
    const config = plainPort({ starttls: 'never' });
    const to = env.addresses.discard;
    const { events, error } = await outcome(
      withSession$(config, (session) =>
        range(0, COUNT).pipe(
          mergeMap(
            (i) =>
              sendmail$(session, 'bulk@client.test', [to], message(`${run}-${i}`, to)).pipe(
                filter((e): e is Sent => e.type === 'sent'),
                map((event) => ({ index: i, event })),
              ),
            16,
          ),
        ),
      ),
    );
    expect(error).toBeUndefined();
    expect(events).toHaveLength(COUNT);
    expect(new Set(events.map((e) => e.index)).size).toBe(COUNT);
    expect(events.every((e) => e.event.reply.code === 250)).toBe(true);

    // One connection carried them all, and Postfix's cleanup saw each Message-ID once.
    const counts = await log.sessionEnd(config.sourceAddress.host);
    expect(counts).toMatchObject({ mail: String(COUNT), rcpt: String(COUNT), bdat: String(COUNT) });
    const queued = await log.waitForCount(new RegExp(`message-id=<${run}-\\d+@client\\.test>`), COUNT);
    expect(new Set(queued.map((l) => /message-id=<([^>]+)>/.exec(l)?.[1])).size).toBe(COUNT);
  });

  it('delivers everything through Postfix anvil limits (2 connections, 20 messages per 5 s) without one message failing', async () => {
    const MESSAGES = 60;
    const { connectionsPerClient, messagesPerClient } = env.postfix.limits;
    const log = PostfixLog.mark();
    const run = token('anvil');
    const to = env.addresses.discard;
    const config = plainPort({ port: env.postfix.limited, starttls: 'never' });
    const pool = new SMTPPool({ ...config, maxConnections: 6, throttle: { quietMs: 2_000 } });
    const events: PoolEvent[] = [];
    pool.events$.subscribe((e) => events.push(e));
    const messages = Array.from({ length: MESSAGES }, (_, i): PoolMessage<number> => ({
      from: 'bulk@client.test',
      to,
      body: message(`${run}-${i}`, to),
      id: i,
    }));

    const outcomes = await lastValueFrom(sendAll$(pool, messages).pipe(toArray()));
    await pool.close();

    expect(outcomes.filter((o) => o.status !== 'sent')).toEqual([]);
    expect(new Set(outcomes.map((o) => o.message.id)).size).toBe(MESSAGES);
    // Postfix did limit this client, on both counts, and the pool answered by slowing down.
    const lines = log.lines();
    expect(
      lines.some((l) => l.includes(`Connection concurrency limit exceeded: ${connectionsPerClient + 1} from`)),
    ).toBe(true);
    expect(
      lines.some((l) => l.includes(`Message delivery request rate limit exceeded: ${messagesPerClient + 1} from`)),
    ).toBe(true);
    expect(events.some((e) => e.type === 'throttled')).toBe(true);
    // Each message queued once.
    const queued = await log.waitForCount(new RegExp(`message-id=<${run}-\\d+@client\\.test>`), MESSAGES);
    expect(new Set(queued.map((l) => /message-id=<([^>]+)>/.exec(l)?.[1])).size).toBe(MESSAGES);
  }, 120_000);
});
