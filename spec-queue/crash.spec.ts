import { lastValueFrom } from 'rxjs';
import { MailQueue, QueueOutcome } from '../lib/queue';
import {
  WorkerProcess,
  collectOutcomes,
  connection,
  ids,
  message,
  queueName,
  recordingServer,
  startWorkerProcess,
  until,
} from './helpers/queue';
import { defined } from '../spec/helpers/defined';
import { mulberry32 } from '../spec/helpers/random';

/*
 * Issue 15's crash test: 3 worker processes send 5,000 messages to a recording loopback server,
 * and every few seconds one of them, picked at random, is killed with SIGKILL and replaced. At the
 * end every job has exactly one final outcome, the server took every `sent` message exactly once,
 * any message it took twice is among the `possibly-delivered` ones, and none is lost.
 */
const MESSAGES = Number(process.env.QUEUE_CRASH_MESSAGES ?? 5_000);
const WORKERS = 3;
/** Kills happen every 2 to 3.5 s while jobs remain, at most this many. */
const MAX_KILLS = Number(process.env.QUEUE_CRASH_KILLS ?? 12);
const RUN_DEADLINE_MS = 150_000;
const SEED = Number(process.env.QUEUE_CRASH_SEED ?? Date.now() % 1_000_000);

it(
  `${WORKERS} worker processes, ${MESSAGES} messages, one killed with SIGKILL every few seconds: one outcome each, nothing resent blindly, nothing lost`,
  async () => {
    const started = Date.now();
    const rand = mulberry32(SEED);
    const { server, accepted } = await recordingServer();
    const q = new MailQueue(queueName('crash'), {
      connection: connection(),
      retry: { attempts: 5, backoffMs: 200 },
      eventsMaxLen: 200_000,
    });
    const { outcomes, subscription } = collectOutcomes({ name: q.name, connection: connection() });
    const workers = new Set<WorkerProcess>();
    const spawnWorker = (): void => {
      const w = startWorkerProcess({
        redisPort: connection().port,
        queue: q.name,
        smtpPort: server.port,
        maxConnections: 2,
        maxInFlightPerConnection: 4,
        lockDuration: 3000,
        stalledInterval: 1000,
      });
      workers.add(w);
      void w.exited.then(() => workers.delete(w));
    };
    let kills = 0;
    try {
      const all = ids(MESSAGES);
      for (let i = 0; i < all.length; i += 1000)
        await lastValueFrom(q.addBulk$(all.slice(i, i + 1000).map((id) => message(id))));
      for (let i = 0; i < WORKERS; i++) spawnWorker();
      await Promise.all([...workers].map((w) => w.ready));

      const done = (): boolean => outcomes.length >= MESSAGES;
      while (!done() && kills < MAX_KILLS && Date.now() - started < RUN_DEADLINE_MS - 30_000) {
        const wait = Date.now() + 2000 + rand() * 1500;
        while (!done() && Date.now() < wait) await new Promise((r) => setTimeout(r, 50));
        if (done()) break;
        const live = [...workers];
        const victim = defined(live[Math.floor(rand() * live.length)], 'a live worker');
        await victim.kill();
        kills++;
        spawnWorker();
      }
      await until(
        done,
        Math.max(5_000, RUN_DEADLINE_MS - (Date.now() - started)),
        `${MESSAGES} outcomes (have ${outcomes.length})`,
      );
    } finally {
      await Promise.all([...workers].map((w) => w.stop(15_000)));
      subscription.unsubscribe();
    }
    // Late outcomes or duplicate events would show up here.
    await new Promise((r) => setTimeout(r, 500));
    const counts = await q.queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed', 'prioritized');
    await q.close();
    await server.close();

    const taken = new Map<string, number>();
    for (const a of accepted) taken.set(a.id, (taken.get(a.id) ?? 0) + 1);
    const byJob = new Map<string, QueueOutcome[]>();
    for (const o of outcomes) byJob.set(o.jobId, [...(byJob.get(o.jobId) ?? []), o]);
    const status = (s: QueueOutcome['status']): string[] => outcomes.filter((o) => o.status === s).map((o) => o.jobId);
    const sent = status('sent');
    const possiblyDelivered = new Set(status('possibly-delivered'));
    const duplicates = [...taken].filter(([, n]) => n > 1).map(([id]) => id);
    const lost = ids(MESSAGES).filter(
      (id) => !byJob.has(id) || (byJob.get(id)?.[0]?.status === 'sent' && !taken.has(id)),
    );
    const pdTaken = [...possiblyDelivered].filter((id) => taken.has(id)).length;
    console.log(
      `crash test (seed ${SEED}): ${MESSAGES} messages, ${WORKERS} workers, ${kills} killed with SIGKILL, ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
        `  sent ${sent.length} / possibly-delivered ${possiblyDelivered.size} (the server had ${pdTaken} of them) / ` +
        `refused ${status('refused').length} / failed ${status('failed').length}\n` +
        `  duplicates ${duplicates.length} / lost ${lost.length}; BullMQ: ${JSON.stringify(counts)}`,
    );

    // Exactly one final outcome per job, in the event stream and in Redis.
    expect([...byJob.values()].filter((list) => list.length !== 1).map((list) => list[0]?.jobId)).toEqual([]);
    expect(byJob.size).toBe(MESSAGES);
    expect(counts).toEqual({
      completed: sent.length,
      failed: MESSAGES - sent.length,
      active: 0,
      wait: 0,
      delayed: 0,
      prioritized: 0,
    });
    // Every `sent` message was taken exactly once; any taken twice was reported possibly delivered.
    expect(sent.filter((id) => taken.get(id) !== 1)).toEqual([]);
    expect(duplicates.filter((id) => !possiblyDelivered.has(id))).toEqual([]);
    expect(lost).toEqual([]);
    expect(status('failed')).toEqual([]);
    expect(status('refused')).toEqual([]);
    expect(kills).toBeGreaterThan(0);
  },
  RUN_DEADLINE_MS + 30_000,
);
