/**
 * The main job end to end, on this machine only: an embedded SMTP server on 127.0.0.1, a
 * generated batch of 3,000 messages (some to a refused recipient, some met with a transient
 * 451 and retried), and `rx-smtp bulk` sending it with its live progress display, then a summary.
 *
 *   npm run demo
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { SMTPServer } from 'smtp-server';

const MESSAGES = 3000;

async function main(): Promise<void> {
  const received = { messages: 0, deferred: 0 };
  const server = await startServer(received);
  const { port } = server.server.address() as AddressInfo;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-demo-'));
  const batch = path.join(dir, 'batch.jsonl');
  const outcomes = path.join(dir, 'outcomes.jsonl');
  fs.writeFileSync(batch, generate(MESSAGES));
  console.log(`embedded SMTP server on 127.0.0.1:${port}; ${MESSAGES} messages in ${batch}\n`);

  // The command as a user runs it: its own process (and core), the live display on this terminal.
  const args = ['bulk', '--server', `smtp://127.0.0.1:${port}`, '--messages', batch, '--outcomes', outcomes];
  console.log(`$ rx-smtp ${args.join(' ')} --connections 8 --retry 2\n`);
  const started = Date.now();
  const code = await run([path.join(__dirname, '../lib/cli/main.js'), ...args, '--connections', '8', '--retry', '2']);
  await new Promise<void>((resolve) => server.close(() => resolve()));

  const statuses = new Map<string, number>();
  for (const line of fs.readFileSync(outcomes, 'utf8').split('\n')) {
    if (!line) continue;
    const { status } = JSON.parse(line) as { status: string };
    if (status !== 'sending') statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }
  // Exit code 1: some recipients were refused (every 40th message has nobody@ among its recipients).
  const why = code === 1 ? ' (1: some recipients refused, as this server does to every 40th message on purpose)' : '';
  console.log(`\nrx-smtp exited ${code ?? 'on a signal'}${why} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`outcomes: ${[...statuses].map(([s, n]) => `${s} ${n}`).join(', ')}  (${outcomes})`);
  console.log(`the server accepted ${received.messages} messages and deferred ${received.deferred} with 451 (retried)`);
}

/** Every 40th message also goes to nobody@ (refused, 550); every 100th is from slow+…@ (451 on its first try). */
function generate(n: number): string {
  let text = '';
  for (let i = 0; i < n; i++) {
    const to = i % 40 === 0 ? [`reader${i}@example.test`, 'nobody@example.test'] : [`reader${i}@example.test`];
    const from = i % 100 === 7 ? `slow+${i}@example.test` : 'news@example.test';
    text += `${JSON.stringify({ id: `msg-${i}`, from, to, subject: `Issue ${i}`, text: `Hello reader ${i}.` })}\n`;
  }
  return text;
}

function run(argv: readonly string[]): Promise<number | null> {
  return new Promise((resolve) => spawn(process.execPath, argv, { stdio: 'inherit' }).on('close', resolve));
}

/** smtp-server on loopback: refuses nobody@, defers each slow+…@ sender once, keeps nothing. */
async function startServer(received: { messages: number; deferred: number }): Promise<SMTPServer> {
  const deferred = new Set<string>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onMailFrom(address, _session, callback): void {
      if (!address.address.startsWith('slow+') || deferred.has(address.address)) return callback();
      deferred.add(address.address);
      received.deferred++;
      // A plain transient failure (the message is retried), not a "slow down": that would make the
      // pool's adaptive throttle back off, which is not what this demo shows.
      callback(Object.assign(new Error('4.3.0 Temporary local problem'), { responseCode: 451 }));
    },
    onRcptTo(address, _session, callback): void {
      if (address.address.startsWith('nobody@'))
        return callback(Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 }));
      callback();
    },
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => {
        received.messages++;
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
