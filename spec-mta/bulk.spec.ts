/**
 * Bulk sending over one connection: transactions stacked with mergeMap, every
 * message accounted for by the client and by Postfix.
 */
import { filter, map, mergeMap, range } from 'rxjs';
import { SendEvent, sendmail$, withSession$ } from '../lib';
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
});
