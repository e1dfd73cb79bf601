import * as fs from 'node:fs';
import { UsageError } from './args';

/** One line of the outcomes file. `sending` marks a message handed to the pool, before its outcome. */
export interface OutcomeLine {
  readonly id: string;
  readonly status: 'sending' | 'sent' | 'refused' | 'failed' | 'possibly-delivered';
  readonly attempts?: number;
  readonly refused?: Readonly<Record<string, string>>;
  readonly error?: string;
}

/** What an earlier run left in the outcomes file. */
export interface Earlier {
  /** Ids never to send again: `sent` or `possibly-delivered`. */
  readonly done: ReadonlySet<string>;
  /** Ids handed to the pool with no outcome: the run stopped while they were under way. */
  readonly interrupted: readonly string[];
}

/**
 * Reads an outcomes file (absent: nothing done). A message marked `sending` with no outcome may
 * have reached the server before the run stopped; it counts as possibly delivered, never resent
 * (RFC 5321 §4.5.3.2: resending blindly risks a duplicate). A torn last line (a crash mid-write) is ignored.
 */
export function readEarlier(path: string): Earlier {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { done: new Set(), interrupted: [] };
    throw new UsageError(`--outcomes ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const last = new Map<string, OutcomeLine['status']>();
  for (const line of text.split('\n')) {
    const entry = parseLine(line);
    if (entry) last.set(entry.id, entry.status);
  }
  const done = new Set<string>();
  const interrupted: string[] = [];
  for (const [id, status] of last) {
    if (status === 'sent' || status === 'possibly-delivered') done.add(id);
    if (status === 'sending') interrupted.push(id);
  }
  return { done, interrupted };
}

function parseLine(line: string): OutcomeLine | undefined {
  try {
    const entry = JSON.parse(line) as Partial<OutcomeLine>;
    return typeof entry.id === 'string' && typeof entry.status === 'string' ? (entry as OutcomeLine) : undefined;
  } catch {
    return undefined;
  }
}

/** Appends outcome lines, each with one write(2) as it happens: a crash loses nothing written. */
export class Journal {
  private constructor(private readonly fd: number) {}

  /** The file at `path`, appended to; `undefined`: standard output. */
  static open(path: string | undefined): Journal {
    if (path === undefined) return new Journal(1);
    try {
      return new Journal(fs.openSync(path, 'a'));
    } catch (err) {
      // openSync fails with a system error: its code (ENOENT, EACCES, …) says it best.
      const { code, message } = err as NodeJS.ErrnoException;
      throw new UsageError(`--outcomes ${path}: ${code ?? message}`);
    }
  }

  write(line: OutcomeLine): void {
    fs.writeSync(this.fd, `${JSON.stringify(line)}\n`);
  }

  close(): void {
    if (this.fd !== 1) fs.closeSync(this.fd);
  }
}
