import { Readable } from 'node:stream';
import { lastValueFrom } from 'rxjs';
import { MailQueue, MailWorker, startWorker } from '../lib/queue';
import {
  collectOutcomes,
  connection,
  message,
  queueName,
  recordingServer,
  startWorkerProcess,
  until,
} from './helpers/queue';

/*
 * The "no blind resend" marker, one job at a time: a worker process killed with SIGKILL after or
 * before the final dot, and a worker whose lock expired under it. BullMQ hands a stalled job to
 * another worker once its lock is gone: short locks keep these tests quick.
 */
const LOCK = { lockDuration: 1500, stalledInterval: 500 };
const DEADLINE = 30_000;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function setUp(what: string): { q: MailQueue; seen: ReturnType<typeof collectOutcomes>['outcomes'] } {
  const q = new MailQueue(queueName(what), { connection: connection(), retry: { attempts: 3, backoffMs: 100 } });
  const { outcomes, subscription } = collectOutcomes({ name: q.name, connection: connection() });
  cleanups.push(
    () => q.close(),
    () => subscription.unsubscribe(),
  );
  return { q, seen: outcomes };
}

function inProcessWorker(
  q: MailQueue,
  port: number,
  extra: Partial<Parameters<typeof startWorker>[0]> = {},
): MailWorker {
  const w = startWorker({
    queue: q.name,
    connection: connection(),
    pool: { host: '127.0.0.1', port, starttls: 'never', localHostname: 'worker.test' },
    worker: LOCK,
    ...extra,
  });
  cleanups.push(() => w.close());
  return w;
}

function workerProcess(q: MailQueue, port: number): ReturnType<typeof startWorkerProcess> {
  const child = startWorkerProcess({
    redisPort: connection().port,
    queue: q.name,
    smtpPort: port,
    maxConnections: 1,
    maxInFlightPerConnection: 1,
    ...LOCK,
  });
  cleanups.push(() => child.kill());
  return child;
}

describe('a job whose worker died', () => {
  it('after the final dot: the next worker ends it possibly-delivered and does not send it again', async () => {
    // The first final dot is taken and never answered: the worker waits for a verdict when it dies.
    const { server, accepted, count } = await recordingServer((_id) =>
      accepted.length === 1 ? { stall: true } : undefined,
    );
    cleanups.push(() => server.close());
    const { q, seen } = setUp('after-dot');
    await lastValueFrom(q.add$(message('dotted')));
    const first = workerProcess(q, server.port);
    await until(() => accepted.length === 1, DEADLINE, 'the final dot');
    await first.kill();
    const next = inProcessWorker(q, server.port);
    const stats: { recovered?: number } = {};
    const subscription = next.stats$.subscribe((s) => Object.assign(stats, s));
    cleanups.push(() => subscription.unsubscribe());
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]).toMatchObject({
      status: 'possibly-delivered',
      jobId: 'dotted',
      error: { code: 'ERR_SMTP_POSSIBLY_DELIVERED' },
    });
    expect(await (await q.queue.getJob('dotted'))?.getState()).toBe('failed');
    await until(() => stats.recovered === 1, 2_000, 'the recovered count');
    expect(count('dotted')).toBe(1);
  });

  it('before the final dot: the next worker sends it, once', async () => {
    // The first DATA is never answered: the worker dies in the middle of the transaction.
    let datas = 0;
    const { server, count } = await recordingServer(undefined, {
      DATA: () => (++datas === 1 ? { stall: true } : '354 End data with <CR><LF>.<CR><LF>'),
    });
    cleanups.push(() => server.close());
    const { q, seen } = setUp('before-dot');
    await lastValueFrom(q.add$(message('undotted')));
    const first = workerProcess(q, server.port);
    await until(() => datas === 1, DEADLINE, 'the first DATA');
    await first.kill();
    inProcessWorker(q, server.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]).toMatchObject({ status: 'sent', jobId: 'undotted' });
    expect(count('undotted')).toBe(1);
  });
});

describe('a worker whose lock on the job expired', () => {
  it('does not write the final dot; the job comes back unmarked and is sent once', async () => {
    const { server, count } = await recordingServer();
    cleanups.push(() => server.close());
    const { q, seen } = setUp('lock-lost');
    // The first attempt's body waits for the test, which meanwhile takes the job's lock away.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    const resolveBody = (): Readable =>
      Readable.from(
        (async function* () {
          yield Buffer.from('X-Job: gated\r\nSubject: gated\r\n\r\n');
          if (++reads === 1) await gate;
          yield Buffer.from('the end of the body\r\n');
        })(),
      );
    await lastValueFrom(
      q.add$({ id: 'gated', from: 'sender@example.test', to: 'rcpt@example.test', body: { ref: 'gated' } }),
    );
    inProcessWorker(q, server.port, { resolveBody });
    await until(() => server.sessions.some((s) => s.commands.includes('DATA')), DEADLINE, 'DATA');
    const redis = await q.queue.getBackend().client;
    expect(await redis.del(`${q.queue.toKey('gated')}:lock`)).toBe(1);
    release();
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]).toMatchObject({ status: 'sent', jobId: 'gated' });
    expect(count('gated')).toBe(1);
    // The first attempt's connection was closed before its end: that session took no message.
    expect(server.sessions[0]?.messages).toHaveLength(0);
  });
});
