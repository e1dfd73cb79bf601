/**
 * W6 (issue 15): the queue's overhead per message. `variant`:
 * - `pool`: the reference, an in-process `SMTPPool` of 8 connections × 4 stacked, fed by `sendAll$`;
 * - `queue-N`: N worker processes (this file, `worker`), each with the same pool, and this process
 *   as the producer: it queues the messages through `MailQueue` once the workers are connected and
 *   times until every job has ended;
 * - `worker`: one worker (`startWorker`) on the queue `args.queue`, until SIGTERM.
 * Everything goes to smtp-sink; Redis is the run's own (append-only file on).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { lastValueFrom } from 'rxjs';
import { PoolConfig, PoolMessage, SMTPPool, sendAll$ } from '../lib/index';
import { MailQueue, QueueMessage, startWorker } from '../lib/queue';
import { ClientArgs, FROM, Report, main, message1k, recipients, seconds } from './common';

const poolConfig = (args: ClientArgs): PoolConfig => ({
  host: args.host,
  port: args.port,
  starttls: 'never',
  localHostname: 'bench.test',
  maxConnections: 8,
  maxInFlightPerConnection: 4,
  maxMessagesPerConnection: Number.MAX_SAFE_INTEGER,
});

const connection = (args: ClientArgs): { host: string; port: number } => ({
  host: '127.0.0.1',
  port: args.redisPort ?? 6379,
});

/** The reference: the same pool in this process, `sendAll$` reading a generator. */
async function inProcess(args: ClientArgs): Promise<Report> {
  const pool = new SMTPPool(poolConfig(args));
  const body = message1k();
  const to = recipients(args.rcpts);
  const deadline = seconds() + args.maxSeconds;
  let truncated = false;
  function* messages(): Generator<PoolMessage> {
    for (let i = 0; i < args.count; i++) {
      if (seconds() > deadline) return void (truncated = true);
      yield { from: FROM, to, body };
    }
  }
  let sent = 0;
  let failed = 0;
  const t0 = seconds();
  await new Promise<void>((resolve, reject) =>
    sendAll$(pool, messages()).subscribe({
      next: (o) => {
        if (o.status === 'sent') sent++;
        else failed++;
      },
      error: reject,
      complete: resolve,
    }),
  );
  const elapsed = seconds() - t0;
  await pool.close();
  return { messages: sent, failed, bytes: 0, seconds: elapsed, truncated };
}

/** N worker processes and this producer; timed from the first message queued to the last job ended. */
async function throughQueue(args: ClientArgs, workers: number): Promise<Report> {
  const name = `bench-w6-${process.pid}`;
  const queue = new MailQueue(name, { connection: connection(args) });
  const children: ChildProcess[] = [];
  try {
    await queue.queue.obliterate({ force: true });
    for (let i = 0; i < workers; i++)
      children.push(await startWorkerProcess({ ...args, variant: 'worker', queue: name }));
    const body = message1k().toString('latin1');
    const to = recipients(args.rcpts);
    const t0 = seconds();
    for (let i = 0; i < args.count; i += 1000) {
      const batch: QueueMessage[] = [];
      for (let j = i; j < Math.min(args.count, i + 1000); j++) batch.push({ from: FROM, to, body });
      await lastValueFrom(queue.addBulk$(batch));
    }
    let counts = { completed: 0, failed: 0 };
    let truncated = false;
    for (;;) {
      counts = (await queue.queue.getJobCounts('completed', 'failed')) as typeof counts;
      if (counts.completed + counts.failed >= args.count) break;
      if (seconds() - t0 > args.maxSeconds) {
        truncated = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const elapsed = seconds() - t0;
    return {
      messages: counts.completed,
      failed: counts.failed,
      bytes: 0,
      seconds: elapsed,
      truncated,
      note: `${workers} worker process(es)`,
    };
  } finally {
    await Promise.all(children.map((child) => stop(child)));
    await queue.queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}

/** Starts this file as a worker and waits (bounded) until it is connected. */
function startWorkerProcess(args: ClientArgs): Promise<ChildProcess> {
  const child = spawn(process.execPath, [__filename, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('a worker was not ready within 20 s')), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      if (!d.toString().includes('ready')) return;
      clearTimeout(timer);
      resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`a worker exited (${code ?? 'by a signal'}) before it was ready`)));
  });
}

/** SIGTERM (the worker closes gracefully), SIGKILL after 10 s. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** One worker until SIGTERM: never reports (the producer counts the jobs). */
function worker(args: ClientArgs): void {
  const w = startWorker({ queue: args.queue ?? '', connection: connection(args), pool: poolConfig(args) });
  w.worker.on('ready', () => process.stdout.write('ready\n'));
  process.once('SIGTERM', () => {
    w.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

const args = JSON.parse(process.argv[2] ?? '{}') as ClientArgs;
if (args.variant === 'worker') worker(args);
else
  main(async (a) => {
    if (a.variant === 'pool') return inProcess(a);
    const workers = Number(/^queue-(\d+)$/.exec(a.variant ?? '')?.[1]);
    if (!(workers > 0)) throw new Error(`queue: no variant ${a.variant ?? '(none)'}`);
    return throughQueue(a, workers);
  });
