import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/**
 * The suite's private Redis: Debian's redis-server on a free 127.0.0.1 port, its data (AOF on, so
 * that the restart test finds the queue again) under build/queue-redis/. Started by the global
 * setup, stopped by the global teardown; the tests find it in env.json.
 */
export const ROOT = path.resolve(__dirname, '..', '..');
export const REDIS_DIR = path.join(ROOT, 'build', 'queue-redis');
const ENV_FILE = path.join(REDIS_DIR, 'env.json');
const DEADLINE_MS = 15_000;

export interface RedisInstance {
  readonly port: number;
  readonly dir: string;
}

/** The instance the global setup started. */
export function suiteRedis(): RedisInstance {
  return JSON.parse(fs.readFileSync(ENV_FILE, 'utf8')) as RedisInstance;
}

export function redisServerBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (!found)
    throw new Error('redis-server is not installed: apt-get install -y redis-server (the queue suite needs it)');
  return found;
}

/** Starts the suite's Redis on a free port with a fresh data directory. */
export async function startSuiteRedis(): Promise<RedisInstance> {
  fs.rmSync(REDIS_DIR, { recursive: true, force: true });
  fs.mkdirSync(REDIS_DIR, { recursive: true });
  const instance = { port: await freePort(), dir: REDIS_DIR };
  await startRedis(instance);
  fs.writeFileSync(ENV_FILE, JSON.stringify(instance));
  return instance;
}

/** Starts redis-server (daemonized, AOF on, no RDB snapshots) and waits until it answers. */
export async function startRedis({ port, dir }: RedisInstance): Promise<void> {
  execFileSync(redisServerBinary(), [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--daemonize',
    'yes',
    '--pidfile',
    path.join(dir, 'redis.pid'),
    '--logfile',
    path.join(dir, 'redis.log'),
  ]);
  await until(() => ping(port), `redis-server on port ${port} to answer`);
}

/**
 * Stops it and waits until its process is gone. `save`: SHUTDOWN as a restart wants it (the
 * AOF flushed); otherwise NOSAVE, for the teardown.
 */
export async function stopRedis({ port, dir }: RedisInstance, save: boolean): Promise<void> {
  const pidFile = path.join(dir, 'redis.pid');
  const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : undefined;
  spawnSync('redis-cli', ['-p', String(port), 'shutdown', save ? 'save' : 'nosave'], {
    encoding: 'utf8',
    timeout: DEADLINE_MS,
  });
  if (pid) await until(async () => !alive(pid), `redis-server (pid ${pid}) to exit`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether Redis answers PING on the port (a raw RESP exchange; no client library needed). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.setTimeout(1000, () => socket.destroy());
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${DEADLINE_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
