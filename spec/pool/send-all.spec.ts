import { EMPTY, Observable, from, lastValueFrom, take, tap, toArray } from 'rxjs';
import { PoolMessage } from '../../lib/pool/outcome';
import { pull$ } from '../../lib/pool/pull';
import { sendAll, sendAll$ } from '../../lib/pool/send-all';
import { collect } from '../helpers/events';
import { BODY, Bench } from './setup';

const message = (id: number): PoolMessage<number> => ({ from: 'a@x.test', to: `r${id}@x.test`, body: BODY, id });

describe('sendAll', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('emits one outcome per message, carrying its id', async () => {
    const fake = await bench.fake({ handlers: { RCPT: (l) => (l.includes('r3@') ? '550 5.1.1 no' : '250 2.1.5 ok') } });
    const pool = bench.pool(fake.port, { maxConnections: 2 });
    const outcomes = await lastValueFrom(from([0, 1, 2, 3, 4].map(message)).pipe(sendAll(pool), toArray()));
    expect(outcomes.map((o) => [o.message.id, o.status]).sort()).toEqual([
      [0, 'sent'],
      [1, 'sent'],
      [2, 'sent'],
      [3, 'refused'],
      [4, 'sent'],
    ]);
  });

  it('ends 10,000 messages with 5 % transient refusals all sent, each delivered once', async () => {
    const MESSAGES = 10_000;
    let mails = 0;
    let rcpts = 0;
    // Every 40th MAIL and every 40th RCPT refused with a plain 4xx (not a slow-down): 5 % of transactions.
    const fake = await bench.fake({
      handlers: {
        MAIL: () => (++mails % 40 === 0 ? '451 4.3.0 Temporary lookup failure' : '250 2.1.0 Ok'),
        RCPT: () => (++rcpts % 40 === 20 ? '450 4.2.0 Mailbox busy' : '250 2.1.5 Ok'),
      },
    });
    const pool = bench.pool(fake.port, { maxConnections: 4, retry: { attempts: 10, backoffMs: 1 } });
    const body = (id: number) => `Message-ID: <${id}@x.test>\r\n\r\nHello.\r\n`;
    const source = Array.from({ length: MESSAGES }, (_, id): PoolMessage<number> => ({
      from: 'a@x.test',
      to: 'b@x.test',
      body: body(id),
      id,
    }));

    const outcomes = await lastValueFrom(sendAll$(pool, source).pipe(toArray()));

    expect(outcomes).toHaveLength(MESSAGES);
    expect(outcomes.filter((o) => o.status === 'sent')).toHaveLength(MESSAGES);
    const retried = outcomes.filter((o) => o.attempts > 1).length;
    expect(retried).toBeGreaterThan(MESSAGES * 0.04);
    // Each message reached the server exactly once: a refused MAIL or RCPT never let a body through.
    const delivered = new Map<string, number>();
    for (const m of fake.sessions.flatMap((session) => session.messages)) {
      const id = /<(\d+)@x\.test>/.exec(m.toString())?.[1];
      if (id !== undefined) delivered.set(id, (delivered.get(id) ?? 0) + 1);
    }
    expect(delivered.size).toBe(MESSAGES);
    expect([...delivered.values()].every((n) => n === 1)).toBe(true);
    expect(pool.stats).toMatchObject({ sent: MESSAGES, failed: 0, refused: 0 });
  }, 60_000);

  it('holds at most queueLimit messages of an Observable source at once', async () => {
    const fake = await bench.fake();
    const pool = bench.pool(fake.port, { maxConnections: 2, queueLimit: 5 });
    let most = 0;
    const watch = <T>() => tap<T>(() => (most = Math.max(most, pool.stats.queued + pool.stats.running)));
    await lastValueFrom(from(Array.from({ length: 40 }, (_, i) => message(i))).pipe(watch(), sendAll(pool), watch()));
    expect(most).toBeLessThanOrEqual(5);
  });

  describe('sendAll$ over a pulled source', () => {
    it("never reads more than queueLimit messages ahead of the outcomes, whatever the producer's length", async () => {
      const fake = await bench.fake();
      const pool = bench.pool(fake.port, { maxConnections: 2, queueLimit: 8 });
      let pulled = 0;
      let outcomes = 0;
      let mostAhead = 0;
      function* producer(): Generator<PoolMessage<number>> {
        for (let i = 0; i < 100_000; i++) {
          pulled++;
          mostAhead = Math.max(mostAhead, pulled - outcomes);
          yield message(i);
        }
      }
      await lastValueFrom(
        sendAll$(pool, producer()).pipe(
          tap(() => outcomes++),
          take(300),
        ),
      );
      expect(outcomes).toBe(300);
      expect(mostAhead).toBeLessThanOrEqual(8);
      expect(pulled).toBeLessThanOrEqual(300 + 8);
    });

    it('reads an AsyncIterable the same way', async () => {
      const fake = await bench.fake();
      const pool = bench.pool(fake.port, { queueLimit: 3 });
      let pulled = 0;
      let outcomes = 0;
      let mostAhead = 0;
      async function* producer(): AsyncGenerator<PoolMessage<number>> {
        for (let i = 0; i < 20; i++) {
          pulled++;
          mostAhead = Math.max(mostAhead, pulled - outcomes);
          yield message(i);
        }
      }
      const all = await lastValueFrom(
        sendAll$(pool, producer()).pipe(
          tap(() => outcomes++),
          toArray(),
        ),
      );
      expect(all.map((o) => o.message.id).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(
        Array.from({ length: 20 }, (_, i) => i),
      );
      expect(mostAhead).toBeLessThanOrEqual(3);
    });
  });
});

describe('pull$', () => {
  const slow = (value: number) =>
    new Observable<number>((s) => {
      setTimeout(() => {
        s.next(value);
        s.complete();
      }, 1);
    });

  it('completes at once on an empty source', async () => {
    expect(await collect(pull$([], 2, () => EMPTY))).toEqual({ values: [] });
  });

  it('errors when the iterator throws', async () => {
    const broken: Iterable<number> = {
      [Symbol.iterator]: () => ({
        next: () => {
          throw new Error('cursor lost');
        },
      }),
    };
    const { error } = await collect(pull$(broken, 2, slow));
    expect(error).toEqual(new Error('cursor lost'));
  });

  it('passes an inner error on', async () => {
    const { error } = await collect(pull$([1], 2, () => new Observable((s) => s.error(new Error('inner')))));
    expect(error).toEqual(new Error('inner'));
  });

  it('returns the iterator when unsubscribed early', async () => {
    let returned = false;
    function* numbers(): Generator<number> {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        returned = true;
      }
    }
    expect(await lastValueFrom(pull$(numbers(), 2, slow).pipe(take(3), toArray()))).toEqual([0, 1, 2]);
    expect(returned).toBe(true);
  });
});
