/**
 * The servers a bench run needs, all on 127.0.0.1 and all owned by the run: smtp-sink, a private
 * Postfix (bench/postfix.sh) and the delaying proxy. `stopAll` ends exactly what was started.
 */
import { ChildProcess, SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..', '..');
const started: (() => void)[] = [];

/** A port that was free a moment ago (the kernel's choice for port 0). */
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

/** Resolves once something accepts connections on the port (bounded). */
async function listening(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function own(child: ChildProcess): void {
  started.push(() => {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGTERM');
  });
}

/**
 * Where the sink and the clients run. Left to the scheduler, a client and smtp-sink sometimes
 * share a core and sometimes not, and a lockstep client's rate then differs by 5× between runs
 * (a wake-up on the other core costs tens of µs on this VM; on the same core it is a context
 * switch). With two or more cores the sink gets the last one and every client the first, as if
 * on two machines; with one core nothing is pinned.
 */
export const PINNING = os.cpus().length >= 2 ? { sink: String(os.cpus().length - 1), clients: '0' } : undefined;

/** What a program printed; null when it could not be started at all (ENOENT), whatever the typings say. */
export const stdoutOf = (result: SpawnSyncReturns<string>): string | null => result.stdout;

/** A command line: the program, then its arguments. */
export type Argv = readonly [string, ...string[]];

/** Prefixes a command with `taskset` for the clients' core (see PINNING). */
export const onClientCore = (command: Argv): Argv =>
  PINNING ? ['taskset', '-c', PINNING.clients, ...command] : [...command];

/** `smtp-sink -u nobody -c 127.0.0.1:PORT 256` (its running counter goes nowhere), on its own core. */
export async function startSink(): Promise<number> {
  const port = await freePort();
  const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  const sink: Argv = ['smtp-sink', ...user, '-c', `127.0.0.1:${port}`, '256'];
  const [exe, ...args]: Argv = PINNING ? ['taskset', '-c', PINNING.sink, ...sink] : sink;
  const child = spawn(exe, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  own(child);
  await listening(port);
  return port;
}

/**
 * W6's redis-server, on the sink's core (the server side), in the foreground as a child of the run,
 * with its append-only file on (as a queue that must survive a restart runs it) in `dir`, emptied first.
 * Throws when redis-server is not installed.
 */
export async function startRedis(dir: string): Promise<number> {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0)
    throw new Error('redis-server is not installed (apt-get install -y redis-server)');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const redis: Argv = [
    'redis-server',
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
    '--logfile',
    path.join(dir, 'redis.log'),
  ];
  const [exe, ...args]: Argv = PINNING ? ['taskset', '-c', PINNING.sink, ...redis] : redis;
  const child = spawn(exe, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  own(child);
  await listening(port);
  return port;
}

/** The private Postfix of W2; throws with the script's reason when it cannot start. */
export async function startPostfix(dir: string): Promise<number> {
  const port = await freePort();
  const script = path.join(REPO, 'bench', 'postfix.sh');
  const result = spawnSync(script, ['start', dir, String(port)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`bench/postfix.sh: ${(result.stderr || result.stdout || '').trim()}`);
  started.push(() => void spawnSync(script, ['stop', dir]));
  return port;
}

/** Waits (bounded) until Postfix's queue is empty, so one run does not pay for the last one's backlog. */
export async function drainPostfix(dir: string, timeoutMs = 30_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const out = stdoutOf(spawnSync('postqueue', ['-c', path.join(dir, 'etc'), '-p'], { encoding: 'utf8' })) ?? '';
    if (out.includes('Mail queue is empty')) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** The delaying proxy, in its own process so it does not share a CPU slice with the orchestrator. */
export async function startProxy(targetPort: number, delayMs: number): Promise<number> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [path.join(__dirname, 'proxy.js'), String(port), String(targetPort), String(delayMs)],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  own(child);
  await listening(port);
  return port;
}

export function stopAll(): void {
  for (let stop = started.pop(); stop; stop = started.pop()) stop();
}
