/**
 * What every bench client shares: its arguments, the report it prints, and the bodies it sends.
 * A client is one child process; it prints exactly one JSON line (`Report`) on stdout, last.
 */
import { performance } from 'node:perf_hooks';

/** Arguments the orchestrator passes to a client, as one JSON string in argv[2]. */
export interface ClientArgs {
  readonly workload: 'w1' | 'w2' | 'w3' | 'w4' | 'w5' | 'w6';
  readonly host: string;
  readonly port: number;
  /** Messages to send (W1, W2, W5) or body bytes (W3, W4). */
  readonly count: number;
  /** Recipients per message. */
  readonly rcpts: number;
  /** Stop starting new work after this many seconds (the count is then smaller). */
  readonly maxSeconds: number;
  /** Transactions or connections in flight, where the client has such a knob. */
  readonly concurrency: number;
  /** Client-specific variant (`stream` / `transform` for nodemailer's DataStream, say). */
  readonly variant?: string;
  /** W6: the bench's redis-server, and the queue a worker process serves. */
  readonly redisPort?: number;
  readonly queue?: string;
  /** W5 paired: how many naive/`sendAll$` pairs of `count` messages to run. */
  readonly pairs?: number;
}

/** What a client measured, printed as the last stdout line. */
export interface Report {
  /** Messages that ended in success. */
  readonly messages: number;
  /** Messages that ended in failure (each one counted once). */
  readonly failed: number;
  /** Body bytes processed (W3, W4). */
  readonly bytes: number;
  /** Seconds from the first connect (or first byte) to the last reply (or last byte). */
  readonly seconds: number;
  /** Whether the time bound cut the run short. */
  readonly truncated: boolean;
  readonly note?: string;
  /** W5 paired: naive ÷ `sendAll$` for each pair of neighbouring blocks. */
  readonly pairRatios?: number[];
}

export const FROM = 'bench-sender@bench.test';
export const recipients = (n: number): string[] => Array.from({ length: n }, (_, i) => `rcpt${i}@discard.test`);

export function parseArgs(): ClientArgs {
  return JSON.parse(process.argv[2] ?? '{}') as ClientArgs;
}

export const seconds = (): number => performance.now() / 1000;

export function report(r: Report): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

/** Runs a client's main and turns a failure into a non-zero exit with the reason on stderr. */
export function main(run: (args: ClientArgs) => Promise<Report>): void {
  run(parseArgs()).then(
    (r) => {
      report(r);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}

/**
 * The 1 KiB message of W1, W2 and W5: a header block and text lines, CRLF, no leading dots, so
 * every client puts the same 1,024 bytes (plus its own framing) on the wire.
 */
export function message1k(): Buffer {
  const head =
    `From: <${FROM}>\r\nTo: <rcpt0@discard.test>\r\nSubject: rx-smtp bench\r\n` +
    'Message-ID: <bench@bench.test>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n';
  const line = 'The quick brown fox jumps over the lazy dog, then does it again for the benchmark.\r\n';
  let text = head;
  while (text.length + line.length <= 1024) text += line;
  text += 'x'.repeat(1024 - text.length - 2) + '\r\n';
  return Buffer.from(text, 'latin1');
}

const CHUNK = 64 * 1024;

/** 64 CRLF lines; W3's body repeats it, so a multiple of its length ends with CRLF (see `wholeLines`). */
const CANONICAL_PATTERN = Buffer.from(
  Array.from({ length: 64 }, (_, i) => `${'abcdefghij'.repeat(1 + (i % 7))} line ${i} of the generated body\r\n`).join(
    '',
  ),
  'latin1',
);

/** `bytes` rounded down to whole repetitions of W3's pattern: the body then ends with CRLF. */
export const wholeLines = (bytes: number): number =>
  Math.max(1, Math.floor(bytes / CANONICAL_PATTERN.length)) * CANONICAL_PATTERN.length;

/**
 * W3's body: `total` bytes (a `wholeLines` size) of CRLF text with no line starting with ".", made 64 KiB at a time
 * (each chunk a fresh buffer, as a file or socket reader would give), never held whole. The wire
 * bytes after DATA are then exactly these bytes, for rx-smtp and the raw socket alike.
 */
// Async with nothing to await: the body must be an AsyncIterable, as a file or socket reader's is.
// eslint-disable-next-line @typescript-eslint/require-await
export async function* canonicalText(total: number): AsyncGenerator<Buffer> {
  const pattern = CANONICAL_PATTERN;
  let offset = 0;
  for (let done = 0; done < total; done += CHUNK) {
    const size = Math.min(CHUNK, total - done);
    const chunk = Buffer.allocUnsafe(size);
    for (let filled = 0; filled < size;) {
      const n = pattern.copy(chunk, filled, offset, Math.min(pattern.length, offset + size - filled));
      filled += n;
      offset = (offset + n) % pattern.length;
    }
    yield chunk;
  }
}

/**
 * W4's input: "mixed text" as found in the wild — mostly LF line ends, some CRLF, a few bare CRs,
 * lines starting with ".", UTF-8 — as `count` distinct 64 KiB chunks (4 MiB), cycled over.
 * Pre-built so the encoders, not the generator, are what is timed.
 */
export function mixedChunks(count = 64): Buffer[] {
  let seed = 42;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'naïve', 'café', 'Grüße', 'über', 'x', 'mail', 'smtp'];
  const ends = (): string => {
    const r = random();
    return r < 0.7 ? '\n' : r < 0.97 ? '\r\n' : r < 0.99 ? '\r' : '\n\n';
  };
  const parts: string[] = [];
  let size = 0;
  while (size < count * CHUNK + 1024) {
    let line = random() < 0.03 ? '.' : '';
    const n = Math.floor(random() * 14);
    for (let i = 0; i < n; i++) line += `${words[Math.floor(random() * words.length)] ?? ''} `;
    line += ends();
    parts.push(line);
    size += Buffer.byteLength(line);
  }
  const all = Buffer.from(parts.join(''), 'utf8');
  return Array.from({ length: count }, (_, i) => Buffer.from(all.subarray(i * CHUNK, (i + 1) * CHUNK)));
}

/** Yields `total` bytes of `chunks`, cycled. */
export function* cycle(chunks: readonly Buffer[], total: number): Generator<Buffer> {
  if (chunks.length === 0) throw new Error('cycle: no chunks to cycle');
  let done = 0;
  for (;;) {
    for (const chunk of chunks) {
      if (done >= total) return;
      const take = Math.min(chunk.length, total - done);
      yield take === chunk.length ? chunk : chunk.subarray(0, take);
      done += take;
    }
  }
}
