import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

/** The built command, as `npm test` leaves it (pretest runs `npm run build`). */
export const CLI = path.join(__dirname, '../../dist/cjs/cli/main.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string | Buffer;
  /** The child is killed and the promise rejects after this many ms. */
  readonly deadlineMs?: number;
  /** Called with the child once it runs (to kill it on an event). */
  readonly started?: (child: ChildProcess) => void;
}

/** Runs `node dist/cjs/cli/main.js …args` to its exit, under a deadline. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, RX_SMTP_PASSWORD: '', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rx-smtp ${args.join(' ')} ran past its deadline\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.deadlineMs ?? 15_000);
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
    options.started?.(child);
  });
}

/** The lines of an output, without the empty last one. */
export const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
