/**
 * What the servers saw: Dovecot's Maildirs, Postfix's log and the smtp-sink
 * dumps. Each wait is driven by the file system's change events (fs.watch),
 * with a deadline so that a missing effect fails the test instead of hanging it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { env } from './env';

const WAIT_MS = 15_000;

/**
 * Resolves with the first value `check` returns (not `undefined`), re-checking
 * whenever something changes under `watched`.
 */
export function waitFor<T>(watched: string, what: string, check: () => T | undefined, ms = WAIT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const watcher = fs.watch(watched, () => attempt());
    const timer = setTimeout(
      () => finish(() => reject(new Error(`Waited ${ms} ms for ${what} (watching ${watched})`))),
      ms,
    );
    function finish(settle: () => void): void {
      if (done) return;
      done = true;
      watcher.close();
      clearTimeout(timer);
      settle();
    }
    function attempt(): void {
      if (done) return;
      try {
        const value = check();
        if (value !== undefined) finish(() => resolve(value));
      } catch (err) {
        finish(() => reject(err instanceof Error ? err : new Error(String(err))));
      }
    }
    attempt();
  });
}

// ---- Dovecot's Maildirs ----

function maildirOf(address: string): string {
  const dir = env.maildirOf[address];
  if (!dir) throw new Error(`No Maildir for ${address} in env.json`);
  return dir;
}

/** The bytes of every message now in `address`'s Maildir (new/ and cur/). */
export function maildirMessages(address: string): Buffer[] {
  const dir = maildirOf(address);
  return ['new', 'cur'].flatMap((sub) => {
    const folder = path.join(dir, sub);
    if (!fs.existsSync(folder)) return [];
    return fs.readdirSync(folder).map((name) => fs.readFileSync(path.join(folder, name)));
  });
}

/** Waits until Dovecot delivered a message holding `token` to `address`, and returns its bytes. */
export function delivered(address: string, token: string): Promise<Buffer> {
  // mta/start.sh creates new/ for Dovecot's user; creating it here as root would lock Dovecot out.
  const dir = path.join(maildirOf(address), 'new');
  return waitFor(dir, `a message with ${token} in ${address}'s Maildir`, () =>
    maildirMessages(address).find((m) => m.includes(token)),
  );
}

/** Every message in `address`'s Maildir holding `token` now (to show that nothing arrived). */
export function deliveredNow(address: string, token: string): Buffer[] {
  return maildirMessages(address).filter((m) => m.includes(token));
}

const TRACE_HEADER = /^(Return-Path|Delivered-To|Received):/i;

/**
 * Splits a delivered message into the trace headers the servers put in front
 * (Return-Path, Delivered-To, Received: RFC 5321 §4.4) and the bytes the client sent,
 * which must be `sent` exactly; fails when anything else was added or changed.
 */
export function expectDeliveredAs(message: Buffer, sent: Buffer): { trace: string } {
  const start = message.length - sent.length;
  expect(start).toBeGreaterThanOrEqual(0);
  const tail = message.subarray(start);
  if (!tail.equals(sent)) {
    // Show the difference as text: equal lengths, different bytes, or a different length.
    expect(tail.toString('latin1')).toBe(sent.toString('latin1'));
  }
  const trace = message.subarray(0, start).toString('utf8');
  const fields = trace.split('\r\n').filter((line) => line !== '' && !/^[ \t]/.test(line));
  for (const field of fields) expect(field).toMatch(TRACE_HEADER);
  expect(trace === '' || trace.endsWith('\r\n')).toBe(true);
  return { trace };
}

// ---- Postfix's log ----

/** Postfix's log from now on: only the lines written after `mark()`. */
export class PostfixLog {
  private readonly file = env.postfix.log;
  private constructor(private readonly offset: number) {}

  static mark(): PostfixLog {
    return new PostfixLog(fs.statSync(env.postfix.log).size);
  }

  lines(): string[] {
    const fd = fs.openSync(this.file, 'r');
    try {
      const size = fs.fstatSync(fd).size - this.offset;
      const buffer = Buffer.alloc(Math.max(size, 0));
      fs.readSync(fd, buffer, 0, buffer.length, this.offset);
      return buffer
        .toString('utf8')
        .split('\n')
        .filter((line) => line !== '');
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Waits for a line matching `pattern` and returns it. */
  waitFor(pattern: RegExp, ms?: number): Promise<string> {
    return waitFor(
      this.file,
      `a Postfix log line matching ${String(pattern)}`,
      () => this.lines().find((l) => pattern.test(l)),
      ms,
    );
  }

  /** Waits until `count` lines match `pattern`; returns them. */
  waitForCount(pattern: RegExp, count: number, ms?: number): Promise<string[]> {
    return waitFor(
      this.file,
      `${count} Postfix log lines matching ${String(pattern)}`,
      () => {
        const found = this.lines().filter((l) => pattern.test(l));
        return found.length >= count ? found : undefined;
      },
      ms,
    );
  }

  /**
   * The end of the SMTP session from `client` (an address of ours): smtpd's
   * "disconnect" line, which counts the commands it received (`ehlo=1 mail=1 …`).
   */
  async sessionEnd(client: string): Promise<Record<string, string>> {
    const line = await this.waitFor(new RegExp(`disconnect from \\S+\\[${escape(client)}\\] `));
    const counts = line.slice(line.indexOf(']') + 2).split(' ');
    return Object.fromEntries(counts.map((c) => c.split('=') as [string, string]));
  }
}

// ---- smtp-sink dumps ----

/** One transaction as an smtp-sink dumped it (`-D`): its X- headers, then the message it received. */
export interface SinkRecord {
  readonly clientAddr: string;
  readonly proto: string;
  readonly helo?: string | undefined;
  readonly mail: string;
  readonly rcpts: readonly string[];
  /** The message's lines, as smtp-sink wrote them (LF ends), with its own Received header first. */
  readonly message: string;
}

/** Waits until the sink `name` dumped a transaction holding `token`. */
export function sinkReceived(name: string, token: string): Promise<SinkRecord> {
  return waitFor(env.sinkDumps, `smtp-sink ${name} to dump ${token}`, () =>
    sinkRecords(name).find((r) => r.message.includes(token)),
  );
}

/** Every transaction the sink `name` has dumped so far. */
export function sinkRecords(name: string): SinkRecord[] {
  const file = path.join(env.sinkDumps, `sink-${name}.eml`);
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8');
  return text
    .split(/^(?=X-Client-Addr: )/m)
    .filter((chunk) => chunk.startsWith('X-Client-Addr: '))
    .map(parseSinkRecord);
}

function parseSinkRecord(chunk: string): SinkRecord {
  const lines = chunk.split('\n');
  const fields: [string, string][] = [];
  let i = 0;
  for (const line of lines) {
    const field = /^(X-(?:Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args)): (.*)$/.exec(line);
    if (field?.[1] === undefined || field[2] === undefined) break;
    fields.push([field[1], field[2]]);
    i++;
  }
  const one = (name: string): string | undefined => fields.find(([n]) => n === name)?.[1];
  return {
    clientAddr: one('X-Client-Addr') ?? '',
    proto: one('X-Client-Proto') ?? '',
    helo: one('X-Helo-Args'),
    mail: one('X-Mail-Args') ?? '',
    rcpts: fields.filter(([n]) => n === 'X-Rcpt-Args').map(([, v]) => v),
    message: lines.slice(i).join('\n'),
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
