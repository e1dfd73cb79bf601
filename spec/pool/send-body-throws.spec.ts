import { config, firstValueFrom, materialize, race, timer, toArray, map } from 'rxjs';
import { Readable } from 'node:stream';
import { BODY, Bench } from './setup';

/**
 * A body factory that throws (a file gone, say) is an error of the attempt: before 8383453 the
 * attempt was built inside `defer`, so `send$` still emitted its one outcome and completed.
 */
describe('SMTPPool.send$ with a body factory that throws', () => {
  const bench = new Bench();
  const unhandled: unknown[] = [];
  const saved = config.onUnhandledError;
  beforeEach(() => {
    unhandled.length = 0;
    config.onUnhandledError = (err) => unhandled.push(err);
  });
  afterEach(async () => {
    config.onUnhandledError = saved;
    await bench.tearDown();
  });
  const retry = { attempts: 3, backoffMs: 1 };

  /** Every notification of `send$`, or 'no outcome within 2 s'. */
  const notifications = (pool: ReturnType<Bench['pool']>, body: () => string) =>
    firstValueFrom(
      race(
        pool.send$({ from: 'a@x.test', to: 'b@x.test', body }).pipe(
          materialize(),
          map((n) => (n.kind === 'N' ? { N: n.value.status, attempts: n.value.attempts } : n.kind)),
          toArray(),
        ),
        timer(2_000).pipe(map(() => 'no outcome within 2 s')),
      ),
    );

  it('on the first attempt: one failed outcome, then complete (never an error)', async () => {
    const fake = await bench.fake({});
    const gone = new Error('ENOENT: body file gone');
    const result = await notifications(bench.pool(fake.port, { retry }), () => {
      throw gone;
    });
    expect(result).toEqual([{ N: 'failed', attempts: 1 }, 'C']);
  });

  it('on a retry: one failed outcome, then complete (no hang, no unhandled error)', async () => {
    let tries = 0;
    let calls = 0;
    const fake = await bench.fake({
      handlers: { '.': () => (++tries === 1 ? '451 4.3.0 later' : '250 2.0.0 queued') },
    });
    const result = await notifications(bench.pool(fake.port, { retry }), () => {
      if (++calls > 1) throw new Error('ENOENT: body file gone');
      return BODY;
    });
    expect({ result, unhandled: unhandled.length }).toEqual({
      result: [{ N: 'failed', attempts: 2 }, 'C'],
      unhandled: 0,
    });
  });

  it('closes a fresh stream body its attempt never read (every recipient refused)', async () => {
    const fake = await bench.fake({ handlers: { RCPT: '550 5.1.1 no such user' } });
    const streams: Readable[] = [];
    const body = (): Readable => {
      const stream = Readable.from([Buffer.from(BODY)]);
      streams.push(stream);
      return stream;
    };
    const pool = bench.pool(fake.port, { retry });
    const outcome = await firstValueFrom(pool.send$({ from: 'a@x.test', to: 'b@x.test', body }));
    expect(outcome.status).toBe('refused');
    expect(streams).toHaveLength(1);
    // Never read (the pipelined DATA got the lone dot), and closed all the same.
    expect(streams[0]?.readableDidRead).toBe(false);
    expect(streams[0]?.destroyed).toBe(true);
  });
});
