/**
 * A queue worker in a process of its own, as a deployment runs one: the crash tests start it
 * (compiled to build/spec-queue/), kill it with SIGKILL, and start others. Its configuration is
 * one JSON argument (`WorkerProcessConfig`); it prints `ready` once BullMQ's worker is
 * connected, and closes gracefully on SIGTERM.
 */
import type { RateLimit } from '../../lib/pool/rate-window';
import { startWorker } from '../../lib/queue';

export interface WorkerProcessConfig {
  readonly redisPort: number;
  readonly queue: string;
  readonly smtpPort: number;
  readonly maxConnections: number;
  readonly maxInFlightPerConnection: number;
  readonly lockDuration: number;
  readonly stalledInterval: number;
  readonly rateLimit?: RateLimit;
}

const config = JSON.parse(process.argv[2] ?? '{}') as WorkerProcessConfig;
const worker = startWorker({
  queue: config.queue,
  connection: { host: '127.0.0.1', port: config.redisPort },
  pool: {
    host: '127.0.0.1',
    port: config.smtpPort,
    starttls: 'never',
    localHostname: 'worker.test',
    maxConnections: config.maxConnections,
    maxInFlightPerConnection: config.maxInFlightPerConnection,
  },
  ...(config.rateLimit && { rateLimit: config.rateLimit }),
  worker: { lockDuration: config.lockDuration, stalledInterval: config.stalledInterval, name: `pid-${process.pid}` },
});
worker.worker.on('ready', () => process.stdout.write('ready\n'));
process.once('SIGTERM', () => {
  worker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
