import { lastValueFrom } from 'rxjs';
import { MailQueue, MailWorker, startWorker } from '../lib/queue';
import { collectOutcomes, connection, ids, message, queueName, recordingServer, until } from './helpers/queue';
import { startRedis, stopRedis, suiteRedis } from './helpers/redis';

/*
 * Redis goes away in the middle of a run and comes back with its append-only file: the workers
 * reconnect on their own (ioredis, BullMQ), the jobs they held are finished, and the run
 * completes with one outcome per job and nothing sent twice unless reported possibly delivered.
 */
const MESSAGES = 1_500;

it('survives a Redis restart mid-run: the workers reconnect and the run completes', async () => {
  const { server, accepted } = await recordingServer();
  const q = new MailQueue(queueName('restart'), {
    connection: connection(),
    retry: { attempts: 5, backoffMs: 200 },
    eventsMaxLen: 50_000,
  });
  const { outcomes, subscription } = collectOutcomes({ name: q.name, connection: connection() });
  const workers: MailWorker[] = [];
  try {
    await lastValueFrom(q.addBulk$(ids(MESSAGES).map((id) => message(id))));
    for (let i = 0; i < 2; i++) {
      workers.push(
        startWorker({
          queue: q.name,
          connection: connection(),
          pool: { host: '127.0.0.1', port: server.port, starttls: 'never', maxConnections: 2 },
          worker: { lockDuration: 10_000, stalledInterval: 2_000 },
        }),
      );
    }
    await until(() => accepted.length >= MESSAGES / 5, 60_000, 'a fifth of the messages');
    await stopRedis(suiteRedis(), true);
    const during = accepted.length;
    await new Promise((r) => setTimeout(r, 1000));
    const restartedAt = accepted.length;
    await startRedis(suiteRedis());
    await until(() => outcomes.length >= MESSAGES, 90_000, `${MESSAGES} outcomes (have ${outcomes.length})`);
    console.log(
      `redis restart: ${during} messages taken when Redis stopped, ${restartedAt - during} while it was down (jobs in flight), ` +
        `${MESSAGES} outcomes after it came back`,
    );
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    subscription.unsubscribe();
  }
  const counts = await q.queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed');
  await q.close();
  await server.close();
  const taken = new Map<string, number>();
  for (const a of accepted) taken.set(a.id, (taken.get(a.id) ?? 0) + 1);
  const byJob = new Map(outcomes.map((o) => [o.jobId, o]));
  expect(byJob.size).toBe(MESSAGES);
  expect(outcomes).toHaveLength(MESSAGES);
  expect(counts).toMatchObject({ active: 0, wait: 0, delayed: 0 });
  const possiblyDelivered = outcomes.filter((o) => o.status === 'possibly-delivered').map((o) => o.jobId);
  expect(outcomes.filter((o) => o.status !== 'sent' && o.status !== 'possibly-delivered')).toEqual([]);
  expect(outcomes.filter((o) => o.status === 'sent' && taken.get(o.jobId) !== 1).map((o) => o.jobId)).toEqual([]);
  expect([...taken].filter(([id, n]) => n > 1 && !possiblyDelivered.includes(id))).toEqual([]);
}, 180_000);
