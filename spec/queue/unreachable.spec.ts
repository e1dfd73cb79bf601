import { firstValueFrom } from 'rxjs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import IORedis from 'ioredis';
import { MailQueue } from '../../lib/queue';

/** A 127.0.0.1 port nothing listens on: bound, then released. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Settles with the promise's outcome, or 'hung' after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

// ioredis retries a refused connection for ever; neither a producer nor a worker's close may wait with it.
describe('rx-smtp/queue with Redis unreachable', () => {
  it('add$ and addBulk$ error with ERR_SMTP_QUEUE (timeout) after timeoutMs instead of hanging', async () => {
    // A connection of our own, so that the test can stop ioredis's retries at the end.
    const redis = new IORedis({ host: '127.0.0.1', port: await deadPort(), maxRetriesPerRequest: null });
    redis.on('error', () => undefined);
    const queue = new MailQueue('unreachable', { connection: redis, timeoutMs: 300 });
    const message = { from: 'a@example.test', to: 'b@example.test', body: 'Hi.\r\n', id: 'm1' };
    try {
      const one = await within(
        firstValueFrom(queue.add$(message)).catch((err: unknown) => err),
        5_000,
      );
      expect(one).toMatchObject({ code: 'ERR_SMTP_QUEUE', reason: 'timeout' });
      const bulk = await within(
        firstValueFrom(queue.addBulk$([message])).catch((err: unknown) => err),
        5_000,
      );
      expect(bulk).toMatchObject({ code: 'ERR_SMTP_QUEUE', reason: 'timeout' });
    } finally {
      redis.disconnect();
    }
  });

  it('refuses a timeoutMs that is not a positive number of ms', () => {
    const connection = { host: '127.0.0.1', port: 1 };
    expect(() => new MailQueue('bad', { connection, timeoutMs: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
    );
  });

  // In a child process that must end by itself once close() resolves: a forced close that left ioredis
  // reconnecting kept it alive for ever. The child runs the built package (npm test builds it first).
  it("a worker's close() is forced after closeTimeoutMs, closes its pool, and lets the process exit", async () => {
    const port = await deadPort();
    const script = `
      const { startWorker } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/cjs/queue/index.js'))});
      const quiet = { debug() {}, info() {}, warn() {}, error() {} };
      const worker = startWorker({ queue: 'unreachable', connection: { host: '127.0.0.1', port: ${port}, maxRetriesPerRequest: null },
        pool: { host: '127.0.0.1', port: 1 }, closeTimeoutMs: 300, logger: quiet });
      // Long enough for BullMQ's worker to be retrying its connection: its own close() then waits for ever.
      setTimeout(() => worker.close().then(() => console.log('closed, connections ' + worker.pool.stats.connections)), 1500);`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    let said = '';
    child.stdout.on('data', (chunk: Buffer) => (said += chunk.toString()));
    try {
      const exit = await within(new Promise<number | null>((resolve) => child.once('exit', resolve)), 10_000);
      expect(said).toBe('closed, connections 0\n');
      expect(exit).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
