import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { Subscription } from 'rxjs';
import { Action, FakeServer, FakeSession, Handler } from '../../spec/helpers/fake-server';
import { OutcomesOptions, QueueOutcome, QueueRef, outcomes$ } from '../../lib/queue';
import { ROOT, suiteRedis } from './redis';
import type { WorkerProcessConfig } from './worker-process';
import { defined } from '../../spec/helpers/defined';

/** The suite's Redis, as BullMQ takes it. */
export const connection = (): { host: string; port: number } => ({ host: '127.0.0.1', port: suiteRedis().port });

let queues = 0;
/** A queue name of its own for each test: they share one Redis. */
export const queueName = (what: string): string => `${what}-${process.pid}-${++queues}`;

/** Polls `condition` every 20 ms; fails after `ms`, naming what it waited for. */
export async function until(condition: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A message whose body names it (`X-Job`), so the server can tell which one it received. */
export function message(id: string, to = 'rcpt@example.test'): { id: string; from: string; to: string; body: string } {
  return {
    id,
    from: 'sender@example.test',
    to,
    body: `X-Job: ${id}\r\nSubject: queue test ${id}\r\n\r\nHello from ${id}.\r\n`,
  };
}

export const ids = (n: number, prefix = 'm'): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(5, '0')}`);

/** A final dot the recording server received: which message, and when. */
export interface Accepted {
  readonly id: string;
  readonly at: number;
}

/**
 * The fake SMTP server, recording every message it took (at its final dot) by its `X-Job`;
 * `dot` decides the reply (default 250), per message.
 */
export async function recordingServer(
  dot: (id: string, session: FakeSession) => Action | undefined = () => undefined,
  handlers: Record<string, Handler> = {},
): Promise<{ server: FakeServer; accepted: Accepted[]; count: (id: string) => number }> {
  const accepted: Accepted[] = [];
  const server = await FakeServer.start({
    handlers: {
      ...handlers,
      '.': (_line, session) => {
        const body = defined(session.messages.at(-1), 'the message just ended').toString('latin1');
        const id = /^X-Job: (\S+)/m.exec(body)?.[1] ?? '?';
        accepted.push({ id, at: Date.now() });
        return dot(id, session) ?? '250 2.0.0 Ok: queued';
      },
    },
  });
  const count = (id: string): number => accepted.filter((a) => a.id === id).length;
  return { server, accepted, count };
}

/** `outcomes$` collected into an array, from the start of the queue's event stream. */
export function collectOutcomes(
  queue: QueueRef,
  options: OutcomesOptions = { since: 'start' },
): {
  readonly outcomes: QueueOutcome[];
  readonly subscription: Subscription;
  readonly errors: unknown[];
} {
  const outcomes: QueueOutcome[] = [];
  const errors: unknown[] = [];
  const subscription = outcomes$(queue, options).subscribe({
    next: (o) => outcomes.push(o),
    error: (e: unknown) => errors.push(e),
  });
  return { outcomes, subscription, errors };
}

/** The compiled worker process (the global setup builds it). */
const WORKER_SCRIPT = path.join(ROOT, 'build', 'spec-queue', 'spec-queue', 'helpers', 'worker-process.js');

/** A worker in a child process: `ready` once it is connected; `kill` is SIGKILL. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
  kill(): Promise<void>;
  /** SIGTERM (a graceful close), then SIGKILL if it has not exited within `ms`. */
  stop(ms: number): Promise<void>;
}

export function startWorkerProcess(config: WorkerProcessConfig): WorkerProcess {
  const child = spawn(process.execPath, [WORKER_SCRIPT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`worker ${child.pid ?? '?'} not ready within 20 s: ${stderr}`)),
      20_000,
    );
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker ${child.pid ?? '?'} exited (${code ?? 'by a signal'}) before it was ready: ${stderr}`));
    });
  });
  ready.catch(() => undefined);
  return {
    child,
    ready,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop(ms) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
      await Promise.race([exited, late]);
      clearTimeout(timer);
      await this.kill();
    },
  };
}
