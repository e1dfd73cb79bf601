import { lastValueFrom } from 'rxjs';
import { MailQueue } from '../lib/queue';
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

/*
 * The queue-wide rate limit (BullMQ's limiter, one counter in Redis): 3 worker processes, each
 * able to send faster than the limit on its own, and a server that counts what it takes in each
 * second. It must never see more than the limit in any second.
 */
const LIMIT = 200;
const MESSAGES = 1_200;

it(`keeps 3 worker processes under a global ${LIMIT} msg/s: the server never sees more in any second`, async () => {
  const { server, accepted } = await recordingServer();
  const q = new MailQueue(queueName('rate'), { connection: connection(), eventsMaxLen: 50_000 });
  const { outcomes, subscription } = collectOutcomes({ name: q.name, connection: connection() });
  const workers: WorkerProcess[] = [];
  try {
    await lastValueFrom(q.addBulk$(ids(MESSAGES).map((id) => message(id))));
    for (let i = 0; i < 3; i++) {
      workers.push(
        startWorkerProcess({
          redisPort: connection().port,
          queue: q.name,
          smtpPort: server.port,
          maxConnections: 2,
          maxInFlightPerConnection: 4,
          lockDuration: 10_000,
          stalledInterval: 5_000,
          rateLimit: { messages: LIMIT, perMs: 1000 },
        }),
      );
    }
    await until(() => outcomes.length === MESSAGES, 60_000, `${MESSAGES} outcomes (have ${outcomes.length})`);
  } finally {
    await Promise.all(workers.map((w) => w.stop(10_000)));
    subscription.unsubscribe();
    await q.close();
    await server.close();
  }
  const times = accepted.map((a) => a.at).sort((a, b) => a - b);
  const perSecond = new Map<number, number>();
  for (const t of times) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
  // Any one-second interval, not only those that start on a whole second: for the record.
  let sliding = 0;
  let j = 0;
  times.forEach((t, i) => {
    while (t - defined(times[j], 'an earlier start') >= 1000) j++;
    sliding = Math.max(sliding, i - j + 1);
  });
  const seconds = ((times.at(-1) ?? 0) - (times[0] ?? 0)) / 1000;
  console.log(
    `rate limit ${LIMIT}/s, 3 worker processes, ${MESSAGES} messages in ${seconds.toFixed(1)} s (${(MESSAGES / seconds).toFixed(0)}/s): ` +
      `per second ${JSON.stringify([...perSecond.values()])}, most in any sliding second ${sliding}`,
  );
  expect(outcomes.every((o) => o.status === 'sent')).toBe(true);
  expect(times).toHaveLength(MESSAGES);
  expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(LIMIT);
}, 90_000);
