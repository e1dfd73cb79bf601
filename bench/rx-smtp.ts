/**
 * The rx-smtp client of the bench, one workload per run (see README.md). Runs compiled, in its
 * own process, so its peak RSS is its own.
 */
import { EMPTY, Observable, asapScheduler, catchError, filter, lastValueFrom, mergeMap, observeOn, range, tap } from 'rxjs';
import { BodyEncoder, SMTPPool, SendEvent, Session, SessionConfig, sendmail$, withSession$ } from '../lib/index';
import { ClientArgs, FROM, Report, canonicalText, cycle, main, message1k, mixedChunks, recipients, seconds } from './common';

/** Completes on the microtask queue: skipping thousands of buffered messages must not recurse. */
const SKIP$: Observable<never> = EMPTY.pipe(observeOn(asapScheduler));

/**
 * The time bound: an empty stream (and `onLate`) once past the deadline, else undefined. Checked
 * when mergeMap starts a message, not when `range` emits: `range` is synchronous, so every value
 * is already in mergeMap's buffer before the first message is sent. The skip completes
 * asynchronously: a synchronous EMPTY here makes mergeMap start the next buffered message inside
 * the previous completion, thousands deep, until the stack overflows inside a transaction's
 * callbacks and the run hangs (see README, "Findings").
 */
function withinTime(deadline: number, onLate: () => void): Observable<never> | undefined {
  if (seconds() < deadline) return undefined;
  onLate();
  return SKIP$;
}

/** What a timed run of sends counted: messages sent, sends that failed, and whether time ran out. */
interface Tally {
  messages: number;
  failed: number;
  truncated: boolean;
}

/** `count` sends through mergeMap under the time bound; `tally` fills in as they end. */
function countedSends(args: ClientArgs, deadline: number, tally: Tally, send$: () => Observable<SendEvent>): Observable<unknown> {
  return range(0, args.count).pipe(
    mergeMap(
      () =>
        withinTime(deadline, () => (tally.truncated = true)) ??
        send$().pipe(
          filter((event) => event.type === 'sent'),
          tap(() => tally.messages++),
          catchError(() => {
            tally.failed++;
            return EMPTY;
          }),
        ),
      args.concurrency,
    ),
  );
}

/** W1, W2: `count` messages stacked with mergeMap on one pipelined session. */
async function oneSession(args: ClientArgs): Promise<Report> {
  const config: SessionConfig = { host: args.host, port: args.port, starttls: 'never', localHostname: 'bench.test' };
  const body = message1k();
  const to = recipients(args.rcpts);
  const tally: Tally = { messages: 0, failed: 0, truncated: false };
  const t0 = seconds();
  const work$ = (session: Session): Observable<unknown> =>
    countedSends(args, t0 + args.maxSeconds, tally, () => sendmail$(session, FROM, to, body));
  await lastValueFrom(withSession$(config, work$), { defaultValue: undefined });
  return { ...tally, bytes: 0, seconds: seconds() - t0 };
}

/** W3: one body of `count` bytes, generated lazily, to the sink. */
async function bigBody(args: ClientArgs): Promise<Report> {
  const config: SessionConfig = { host: args.host, port: args.port, starttls: 'never', localHostname: 'bench.test' };
  const t0 = seconds();
  const send$ = (session: Session): Observable<unknown> => sendmail$(session, FROM, recipients(1), canonicalText(args.count));
  await lastValueFrom(withSession$(config, send$), { defaultValue: undefined });
  return { messages: 1, failed: 0, bytes: args.count, seconds: seconds() - t0, truncated: false };
}

/** W4: the body encoder alone (CRLF canonicalisation and dot-stuffing), push by push. */
async function encoder(args: ClientArgs): Promise<Report> {
  const chunks = mixedChunks();
  const encoder = new BodyEncoder({ dotStuff: true, terminate: true });
  let out = 0;
  const t0 = seconds();
  for (const chunk of cycle(chunks, args.count)) out += encoder.push(chunk).length;
  out += encoder.end().length;
  return { messages: 0, failed: 0, bytes: args.count, seconds: seconds() - t0, truncated: false, note: `${out} bytes out` };
}

/**
 * W5: `count` messages through the pool, `mergeMap(…, concurrency)`; 8 connections kept for the
 * whole run (no per-connection message cap), as smtp-source -d and nodemailer's pool do.
 */
async function pooled(args: ClientArgs): Promise<Report> {
  const pool = new SMTPPool({
    host: args.host,
    port: args.port,
    starttls: 'never',
    localHostname: 'bench.test',
    maxConnections: 8,
    maxMessagesPerConnection: Number.MAX_SAFE_INTEGER,
    maxInFlightPerConnection: Math.max(1, Math.ceil(args.concurrency / 8)),
  });
  const body = message1k();
  const to = recipients(args.rcpts);
  const tally: Tally = { messages: 0, failed: 0, truncated: false };
  const t0 = seconds();
  const send$ = countedSends(args, t0 + args.maxSeconds, tally, () => pool.sendmail$(FROM, to, body));
  await lastValueFrom(send$, { defaultValue: undefined });
  const elapsed = seconds() - t0;
  await pool.close();
  return { ...tally, bytes: 0, seconds: elapsed };
}

const workloads: Record<string, (args: ClientArgs) => Promise<Report>> = {
  w1: oneSession,
  w2: oneSession,
  w3: bigBody,
  w4: encoder,
  w5: pooled,
};

main(async (args) => {
  const run = workloads[args.workload];
  if (!run) throw new Error(`rx-smtp: no workload ${args.workload}`);
  return run(args);
});
