/**
 * The fault soak (issue 11 §3): `count` messages through `SMTPPool` + `sendAll$` to a loopback
 * server that cuts connections at random points and refuses some commands (soak-server.ts), then
 * every outcome is held against what the server committed:
 * - exactly one outcome per message;
 * - `sent` ⇒ committed exactly once, with the bytes that were sent (0 lost, 0 corrupt);
 * - `failed` or `refused` ⇒ never committed; `possibly-delivered` ⇒ committed at most once (0 duplicates);
 * - every CANCEL_EVERY-th message goes through `pool.sendmail$` instead and is unsubscribed at a drawn
 *   point (see `cancelledSend$`): `cancelled` when it had no outcome by then, committed at most once either way;
 * - memory flat (RSS and, with --expose-gc, the heap after a full GC, at the start and the end);
 * - after `pool.close()` and the server's close, no handle left that was not there before.
 *
 * `npm run soak` runs 20,000 messages (bounded by SOAK_SECONDS too); SEED replays a run;
 * spec/pool/soak.spec.ts runs a small one inside `npm test`.
 */
import { performance } from 'node:perf_hooks';
import { Observable, catchError, last, map, merge, mergeMap, of, range, takeUntil, takeWhile, timer } from 'rxjs';
import { PoolMessage, SMTPPool, SendOutcome, classifyFailure, sendAll$ } from '../lib/index';
import { SoakServer, draw } from './soak-server';

export interface SoakOptions {
  readonly seed: number;
  readonly messages: number;
  /** No message is fed after this many seconds; those in flight finish. */
  readonly maxSeconds: number;
  /** Scales the server's fault probabilities. Default 1. */
  readonly faultScale?: number;
  /** Progress lines (the CLI prints them). */
  readonly log?: (line: string) => void;
}

export type Status = SendOutcome['status'] | 'cancelled';
const STATUSES: readonly Status[] = ['sent', 'refused', 'failed', 'possibly-delivered', 'cancelled'];

/** Every CANCEL_EVERY-th message is sent with `pool.sendmail$` and cancelled after a drawn delay. */
const CANCEL_EVERY = 20;
const cancelled = (id: number): boolean => id % CANCEL_EVERY === 3;

export interface SoakReport {
  readonly seed: number;
  /** Messages fed to the pool (fewer than asked when the time bound cut the run short). */
  readonly fed: number;
  readonly truncated: boolean;
  readonly seconds: number;
  readonly outcomes: Readonly<Record<Status, number>>;
  /** Outcomes by the error's code (or reply code), per status other than sent. */
  readonly causes: Readonly<Record<string, number>>;
  /** Ids fed that got no outcome, and ids that got more than one. */
  readonly missing: readonly number[];
  readonly repeated: readonly number[];
  /** Ids the server committed more than once. */
  readonly duplicates: readonly number[];
  /** Ids reported sent that the server never committed. */
  readonly lost: readonly number[];
  /** Ids reported failed or refused that the server committed. */
  readonly committedButFailed: readonly number[];
  /** Ids committed with other bytes than were sent. */
  readonly corrupt: readonly number[];
  /** Possibly delivered or cancelled, and committed or not (both are legal: for the record). */
  readonly possiblyDelivered: Readonly<
    Record<'possibly-delivered' | 'cancelled', { readonly committed: number; readonly notCommitted: number }>
  >;
  readonly faults: Readonly<Record<string, number>>;
  readonly connections: number;
  readonly violations: readonly string[];
  readonly memory: {
    readonly rssStartMiB: number;
    readonly rssEndMiB: number;
    readonly heapStartMiB: number | undefined;
    readonly heapEndMiB: number | undefined;
  };
  /** Handles alive after the pool and the server closed that were not alive before. */
  readonly handlesLeft: readonly string[];
}

/** Bodies every 100th message: ~300 KiB, streamed in 16 KiB chunks, so a cut can land while the client writes. */
const LARGE_EVERY = 100;

/**
 * Message `id`'s body, as the server must commit it: CRLF text that already is canonical (the
 * encoder leaves it as it is), with lines that start with "." (stuffed on the wire, unstuffed
 * by the server) and, every LARGE_EVERY messages, ~300 KiB.
 */
export function bodyOf(id: number): Buffer {
  const head = `Message-ID: <${id}@soak.test>\r\nSubject: soak ${id}\r\n\r\n`;
  const lines = [`Hello ${id}.`, '.a line with a leading dot', '..two dots', `.`, 'the end'];
  const body =
    id % LARGE_EVERY === 7 ? Array.from({ length: 4_000 }, (_, i) => `${i} ${'x'.repeat(70)}`).concat(lines) : lines;
  return Buffer.from(`${head}${body.join('\r\n')}\r\n`, 'latin1');
}

/** A fresh streamed body per attempt, so a message cut mid-body can be retried. */
// Async with nothing to await: a streamed body is an AsyncIterable.
// eslint-disable-next-line @typescript-eslint/require-await
async function* chunked(bytes: Buffer): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += 16 * 1024) yield bytes.subarray(at, at + 16 * 1024);
}

function message(id: number): PoolMessage<number> {
  const rcpts = 1 + (id % 3);
  const to = Array.from({ length: rcpts }, (_, k) => `r${k}@soak.test`);
  const bytes = bodyOf(id);
  // Strings, bytes and streams: the three ways a body reaches the transaction.
  const body = id % LARGE_EVERY === 7 ? () => chunked(bytes) : id % 2 === 0 ? bytes.toString('latin1') : bytes;
  return { from: `m${id}@soak.test`, to, body, id };
}

const MiB = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

function heapAfterGc(): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  gc();
  return MiB(process.memoryUsage().heapUsed);
}

/**
 * Handles alive that were not in `before` (as a multiset of their kinds), once they had up to
 * a second to go: a socket or server closed now releases its handle a few turns of the loop later.
 */
async function handlesLeft(before: readonly string[]): Promise<string[]> {
  const deadline = performance.now() + 1_000;
  let left = newHandles(before);
  while (left.length > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    // The polling timer itself is not a leftover.
    left = newHandles(before);
  }
  return left;
}

function newHandles(before: readonly string[]): string[] {
  const left = [...before];
  return process.getActiveResourcesInfo().filter((kind) => {
    const at = left.indexOf(kind);
    if (at < 0) return true;
    left.splice(at, 1);
    return false;
  });
}

/** A progress line: outcomes so far, time, RSS and (with --expose-gc) the heap after a full GC. */
function progress(done: number, t0: number): string {
  const heap = heapAfterGc();
  const memory = `RSS ${MiB(process.memoryUsage().rss)} MiB${heap === undefined ? '' : `, heap after GC ${heap} MiB`}`;
  return `  ${done} outcomes, ${((performance.now() - t0) / 1000).toFixed(1)} s, ${memory}`;
}

/** One message's end as the soak books it: its id, status and cause. */
interface End {
  readonly id: number;
  readonly status: Status;
  readonly cause: string;
}

/** Why a message did not end sent: its error's code, with the reply code when there is one. */
function causeOf(status: Status, error: unknown): string {
  const err = error as { code?: string; smtpCode?: number } | undefined;
  return `${status}: ${err?.code ?? 'no code'}${err?.smtpCode ? ` ${err.smtpCode}` : ''}`;
}

function endOf(outcome: SendOutcome<number>): End {
  const id = outcome.message.id as number;
  if (outcome.status === 'sent') return { id, status: 'sent', cause: 'sent' };
  return { id, status: outcome.status, cause: causeOf(outcome.status, outcome.error) };
}

/**
 * A message sent with `pool.sendmail$` (one attempt) and unsubscribed at a drawn point: at its
 * first recipient event (mid-envelope), at its progress event (its body written, the final reply
 * owed), or after 0–100 ms (often while it waits in the queue or for its connection's write lock).
 */
function cancelledSend$(pool: SMTPPool, id: number, r: number): Observable<End> {
  const m = message(id);
  const body = typeof m.body === 'function' ? m.body() : m.body;
  const at = r < 0.3 ? 'recipient' : r < 0.6 ? 'progress' : undefined;
  return pool.sendmail$(m.from, m.to, body).pipe(
    at ? takeWhile((event) => event.type !== at, true) : takeUntil(timer(Math.floor(((r - 0.6) / 0.4) * 100))),
    last((event) => event.type === 'sent', null),
    map((sent): End =>
      sent ? { id, status: 'sent', cause: 'sent before its cancel' } : { id, status: 'cancelled', cause: 'cancelled' },
    ),
    catchError((err: unknown) => {
      const status = classifyFailure(err).status;
      return of<End>({ id, status, cause: causeOf(status, err) });
    }),
  );
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const handlesBefore = process.getActiveResourcesInfo();
  const heapStartMiB = heapAfterGc();
  const rssStartMiB = MiB(process.memoryUsage().rss);
  const server = await SoakServer.start({
    seed: options.seed,
    messages: options.messages,
    faultScale: options.faultScale,
    bodyOf,
  });
  const pool = new SMTPPool({
    host: '127.0.0.1',
    port: server.port,
    localHostname: 'client.soak.test',
    starttls: 'never',
    maxConnections: 8,
    maxInFlightPerConnection: 4,
    // Retirements (QUIT) happen too, and meet the QUIT faults.
    maxMessagesPerConnection: 100,
    // A stalled reply ends in 2 s (possibly delivered after the dot).
    timeout: 2_000,
    retry: { attempts: 4, backoffMs: 1, maxBackoffMs: 20 },
    connectRetry: { attempts: 5, backoffMs: 1, maxBackoffMs: 50 },
  });
  const t0 = performance.now();
  const deadline = t0 + options.maxSeconds * 1000;
  let fed = 0;
  let truncated = false;
  const fedIds = new Uint8Array(options.messages);
  const feed = (id: number): void => {
    fed++;
    fedIds[id] = 1;
  };
  const timeLeft = (): boolean => {
    if (performance.now() <= deadline) return true;
    truncated = true;
    return false;
  };
  function* messages(): Generator<PoolMessage<number>> {
    for (let id = 0; id < options.messages && timeLeft(); id++) {
      if (cancelled(id)) continue;
      feed(id);
      yield message(id);
    }
  }
  // Alongside, on the same pool: the messages that will be cancelled, a few at a time.
  const cancels$ = range(0, options.messages).pipe(
    mergeMap((id) => {
      if (!cancelled(id) || !timeLeft()) return [];
      feed(id);
      return cancelledSend$(pool, id, draw(options.seed, 'cancel', id));
    }, 4),
  );
  // Per id: how many outcomes, and the status of the last one.
  const seen = new Uint16Array(options.messages);
  const status = new Array<Status | undefined>(options.messages);
  const causes: Record<string, number> = {};
  let done = 0;
  await new Promise<void>((resolve, reject) =>
    merge(sendAll$(pool, messages()).pipe(map(endOf)), cancels$).subscribe({
      next: ({ id, status: s, cause }) => {
        seen[id] = (seen[id] ?? 0) + 1;
        status[id] = s;
        causes[cause] = (causes[cause] ?? 0) + 1;
        if (++done % 5_000 === 0) log(progress(done, t0));
      },
      error: reject,
      complete: resolve,
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await pool.close();
  await server.close();
  const leftovers = await handlesLeft(handlesBefore);
  const rssEndMiB = MiB(process.memoryUsage().rss);
  const heapEndMiB = heapAfterGc();

  const outcomes = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<Status, number>;
  const report = {
    missing: [] as number[],
    repeated: [] as number[],
    duplicates: [] as number[],
    lost: [] as number[],
    committedButFailed: [] as number[],
  };
  const possiblyDelivered = {
    'possibly-delivered': { committed: 0, notCommitted: 0 },
    cancelled: { committed: 0, notCommitted: 0 },
  };
  for (let id = 0; id < options.messages; id++) {
    // A message never fed (the time bound) is neither missing nor anything else.
    if (!fedIds[id]) continue;
    const commits = server.commits[id] ?? 0;
    const outcomesSeen = seen[id] ?? 0;
    const s = status[id];
    if (outcomesSeen === 0) report.missing.push(id);
    if (outcomesSeen > 1) report.repeated.push(id);
    if (commits > 1) report.duplicates.push(id);
    if (s) outcomes[s]++;
    if (s === 'sent' && commits === 0) report.lost.push(id);
    if ((s === 'failed' || s === 'refused') && commits > 0) report.committedButFailed.push(id);
    if (s === 'possibly-delivered' || s === 'cancelled')
      possiblyDelivered[s][commits > 0 ? 'committed' : 'notCommitted']++;
  }
  return {
    seed: options.seed,
    fed,
    truncated,
    seconds,
    outcomes,
    causes,
    ...report,
    corrupt: server.corrupt,
    possiblyDelivered,
    faults: Object.fromEntries([...server.faults].sort()),
    connections: server.connections,
    violations: server.violations,
    memory: { rssStartMiB, rssEndMiB, heapStartMiB, heapEndMiB },
    handlesLeft: leftovers,
  };
}

/** What is wrong with a run, one line per broken rule; empty when it passed. */
export function verdict(report: SoakReport): string[] {
  const wrong: string[] = [];
  const ids = (what: string, list: readonly number[]): void => {
    if (list.length > 0)
      wrong.push(`${list.length} ${what}: ${list.slice(0, 20).join(', ')}${list.length > 20 ? ' …' : ''}`);
  };
  ids('messages without an outcome', report.missing);
  ids('messages with more than one outcome', report.repeated);
  ids('messages committed twice', report.duplicates);
  ids('messages reported sent and never committed (lost)', report.lost);
  ids('messages reported failed/refused that the server committed', report.committedButFailed);
  ids('messages committed with other bytes than were sent', report.corrupt);
  if (report.violations.length > 0)
    wrong.push(`protocol violations seen by the server: ${report.violations.slice(0, 5).join('; ')}`);
  if (report.handlesLeft.length > 0) wrong.push(`handles left after close: ${report.handlesLeft.join(', ')}`);
  return wrong;
}

/** The report as text: outcomes per class, causes, faults, memory. */
export function describe(report: SoakReport): string {
  const lines = [
    `seed ${report.seed}: ${report.fed} messages in ${report.seconds.toFixed(1)} s${report.truncated ? ' (time bound hit)' : ''}, ${report.connections} connections`,
    `outcomes: ${STATUSES.map((s) => `${s} ${report.outcomes[s]}`).join(', ')}`,
    ...(['possibly-delivered', 'cancelled'] as const).map((s) => {
      const { committed, notCommitted } = report.possiblyDelivered[s];
      return `${s}: ${committed} committed by the server, ${notCommitted} not`;
    }),
    'causes:',
    ...Object.entries(report.causes)
      .sort()
      .map(([cause, n]) => `  ${String(n).padStart(6)}  ${cause}`),
    'faults injected:',
    ...Object.entries(report.faults).map(([fault, n]) => `  ${String(n).padStart(6)}  ${fault}`),
    `checks: missing ${report.missing.length}, repeated ${report.repeated.length}, duplicates ${report.duplicates.length}, ` +
      `lost ${report.lost.length}, committed-but-failed ${report.committedButFailed.length}, corrupt ${report.corrupt.length}, ` +
      `violations ${report.violations.length}, handles left ${report.handlesLeft.length}`,
    `memory: RSS ${report.memory.rssStartMiB} → ${report.memory.rssEndMiB} MiB; heap after GC ` +
      (report.memory.heapStartMiB === undefined
        ? 'not measured (run node with --expose-gc)'
        : `${report.memory.heapStartMiB} → ${report.memory.heapEndMiB ?? '?'} MiB`),
  ];
  return lines.join('\n');
}

/** `npm run soak`: SEED (default: random), SOAK_MESSAGES (20,000), SOAK_SECONDS (300). Exit 1 when a rule broke. */
async function main(): Promise<void> {
  const seed = process.env.SEED ? Number(process.env.SEED) : Math.floor(Math.random() * 2 ** 31);
  const messages = Number(process.env.SOAK_MESSAGES ?? 20_000);
  const maxSeconds = Number(process.env.SOAK_SECONDS ?? 300);
  console.log(`soak: seed ${seed} (replay with SEED=${seed}), ${messages} messages, at most ${maxSeconds} s`);
  const report = await runSoak({ seed, messages, maxSeconds, log: (line) => console.log(line) });
  console.log(describe(report));
  const wrong = verdict(report);
  for (const line of wrong) console.log(`FAIL ${line}`);
  console.log(wrong.length === 0 ? 'soak: every rule held' : `soak: ${wrong.length} rule(s) broken (SEED=${seed})`);
  process.exitCode = wrong.length === 0 ? 0 : 1;
}

if (require.main === module) void main();
