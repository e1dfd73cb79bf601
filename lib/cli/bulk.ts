import * as path from 'node:path';
import { PoolMessage, SMTPPool, SendOutcome, sendAll$ } from '../index';
import { SERVER_HELP, SERVER_OPTIONS, UsageError, parse, positiveInt, required } from './args';
import { EXIT, ExitCode, describe, exitCodeOf } from './exit';
import { Io, each, replyText } from './io';
import { Journal, OutcomeLine, readEarlier } from './journal';
import { composeMessage } from './message';
import { Tally, startDisplay, statusLine } from './progress';
import { readFile, sessionConfig } from './server';

const OPTIONS = {
  ...SERVER_OPTIONS,
  messages: { type: 'string', short: 'm' },
  outcomes: { type: 'string', short: 'o' },
  concurrency: { type: 'string' },
  connections: { type: 'string' },
  rate: { type: 'string' },
  retry: { type: 'string' },
} as const;

export const BULK_HELP = `Usage: rx-smtp bulk --server URL --messages FILE.jsonl [options]

Sends a batch through a pool of connections, with a live progress display on a terminal
(plain lines every 2 s otherwise), and writes one outcome per message as a JSON line as soon
as it is known: { "id", "status", "attempts", "refused"?, "error"? }, status one of
sent | refused | failed | possibly-delivered. A { "id", "status": "sending" } line marks
each message handed to the pool.

Resumable: run again with the same --outcomes file and messages already sent or possibly
delivered are skipped; a message that was under way when an earlier run stopped is
recorded as possibly-delivered and never resent. Ctrl-C hands over no more messages and
lets those under way finish, so nothing is left to guess about (Ctrl-C twice: quit now).

Each input line: { "id": "…", "from": "…", "to": ["…"], "subject"?: "…", "text"?: "…", "eml"?: "file.eml" }
(eml: a message file sent as is, its path relative to FILE.jsonl).

Batch options:
  -m, --messages FILE.jsonl the batch
  -o, --outcomes FILE.jsonl where outcomes go (appended; default standard output, no resume)
  --connections N           connections at once (default 5)
  --concurrency N           messages held at once, queued or in flight (default 2 × connections × 4)
  --rate N                  at most N messages started per second
  --retry N                 retries of a transient failure (default 0; never after the body was sent)

${SERVER_HELP}

Exit codes: 0 all sent to every recipient, 1 some message or recipient refused or failed,
2 usage error, 3 could not connect / TLS / AUTH failed, 4 some message possibly delivered.

Examples:
  rx-smtp bulk -s smtp://localhost:2525 -m batch.jsonl -o outcomes.jsonl
  rx-smtp bulk -s smtp+starttls://mx.example.com:587 --auth-user me -m batch.jsonl -o out.jsonl \\
      --connections 8 --rate 50 --retry 2`;

interface InputLine {
  readonly id: string;
  readonly from: string;
  readonly to: readonly string[];
  readonly subject?: string | undefined;
  readonly text?: string | undefined;
  readonly eml?: string | undefined;
}

/** `rx-smtp bulk`. */
export async function bulk(argv: readonly string[], io: Io): Promise<ExitCode> {
  const flags = parse(argv, OPTIONS);
  if (flags.help) {
    io.out(BULK_HELP);
    return EXIT.ok;
  }
  const config = sessionConfig(flags, io.env);
  const file = required(flags.messages, 'messages');
  const batch = readBatch(file);
  const earlier =
    flags.outcomes === undefined ? { done: new Set<string>(), interrupted: [] } : readEarlier(flags.outcomes);
  const journal = Journal.open(flags.outcomes);
  const connections = positiveInt(flags.connections, 'connections', 5);
  const pool = new SMTPPool({
    ...config,
    maxConnections: connections,
    queueLimit: flags.concurrency === undefined ? undefined : positiveInt(flags.concurrency, 'concurrency', 1),
    rateLimit: flags.rate === undefined ? undefined : { messages: positiveInt(flags.rate, 'rate', 1), perMs: 1000 },
    retry: { attempts: 1 + positiveInt(flags.retry, 'retry', 0, 0), backoffMs: 500 },
  });
  for (const id of earlier.interrupted) {
    journal.write({
      id,
      status: 'possibly-delivered',
      attempts: 0,
      error: 'under way when an earlier run stopped: not resent',
    });
  }
  const skip = new Set([...earlier.done, ...earlier.interrupted]);
  const todo = batch.filter((m) => !skip.has(m.id));
  if (skip.size) {
    const skipped = `${batch.length - todo.length} of ${batch.length} messages`;
    io.err(`resuming: ${skipped} already sent or possibly delivered: skipped\n`);
  }
  const tally = new Tally(todo.length);
  earlier.interrupted.forEach(() => tally.counts['possibly-delivered']++);
  const stopDisplay = startDisplay(io.err, io.errColumns, (bar) => statusLine(tally, pool.stats, bar));
  let firstError: unknown;
  // Ctrl-C: hand over no more messages and let those under way end with their outcomes, so a
  // rerun resends none of them and sends the rest; a second Ctrl-C ends the process at once.
  const stop = { requested: false };
  const interrupt = (): void => {
    if (stop.requested) process.exit(130);
    stop.requested = true;
    io.err('\ninterrupted: finishing the messages under way (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', interrupt);
  try {
    await each(sendAll$(pool, handOver(todo, file, journal, stop)), (outcome) => {
      const line = outcomeLine(outcome);
      journal.write(line);
      tally.add(outcome.status, Object.keys(line.refused ?? {}).length);
      if (outcome.status !== 'sent') firstError ??= outcome.error;
    });
  } finally {
    process.off('SIGINT', interrupt);
    stopDisplay();
    journal.close();
    await pool.close();
  }
  if (stop.requested) {
    io.err(
      `interrupted: ${tally.total - tally.done} messages not sent; run again with the same --outcomes to send them\n`,
    );
    return EXIT.refused;
  }
  return verdict(tally, firstError, io);
}

/**
 * The messages as the pool pulls them, until a stop is requested; each marked `sending` in the
 * journal as it is handed over.
 */
function* handOver(
  batch: readonly InputLine[],
  file: string,
  journal: Journal,
  stop: { readonly requested: boolean },
): Generator<PoolMessage<string>> {
  for (const message of batch) {
    if (stop.requested) return;
    journal.write({ id: message.id, status: 'sending' });
    yield {
      id: message.id,
      from: message.from,
      to: message.to,
      body: () =>
        message.eml !== undefined
          ? readFile(path.resolve(path.dirname(file), message.eml), 'messages eml')
          : compose(message),
    };
  }
}

function compose(m: InputLine): string {
  return composeMessage({ from: m.from, to: m.to, subject: m.subject, text: m.text ?? '' });
}

function outcomeLine(outcome: SendOutcome<string>): OutcomeLine {
  const base = { id: outcome.message.id as string, status: outcome.status, attempts: outcome.attempts };
  if (outcome.status !== 'sent') return { ...base, error: describe(outcome.error) };
  const refused = Object.entries(outcome.refused);
  return refused.length
    ? { ...base, refused: Object.fromEntries(refused.map(([r, reply]) => [r, replyText(reply)])) }
    : base;
}

function verdict(tally: Tally, firstError: unknown, io: Io): ExitCode {
  const { sent, refused, failed } = tally.counts;
  if (tally.counts['possibly-delivered']) return EXIT.possiblyDelivered;
  if (failed && sent === 0 && refused === 0 && exitCodeOf(firstError, false) === EXIT.connect) {
    io.err(`rx-smtp: ${describe(firstError)}\n`);
    return EXIT.connect;
  }
  return refused || failed || tally.refusedRecipients ? EXIT.refused : EXIT.ok;
}

/** The batch file, every line checked before anything is sent. */
function readBatch(file: string): InputLine[] {
  const lines = readFile(file, 'messages').toString('utf8').split('\n');
  const seen = new Set<string>();
  const batch: InputLine[] = [];
  lines.forEach((text, i) => {
    if (!text.trim()) return;
    const line = checkLine(text, `${file} line ${i + 1}`);
    if (seen.has(line.id)) throw new UsageError(`${file} line ${i + 1}: id ${JSON.stringify(line.id)} appears twice`);
    seen.add(line.id);
    batch.push(line);
  });
  return batch;
}

function checkLine(text: string, where: string): InputLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where}: not JSON (${(err as Error).message})`);
  }
  // A line that is no object (null, a number) has none of the fields: the first one is reported.
  const fields = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const { id, from, to } = fields;
  if (typeof id !== 'string' && typeof id !== 'number')
    throw new UsageError(`${where}: "id" must be a string or a number`);
  if (typeof from !== 'string') throw new UsageError(`${where}: "from" must be a string`);
  if (!Array.isArray(to) || !to.length || !to.every((t): t is string => typeof t === 'string')) {
    throw new UsageError(`${where}: "to" must be a non-empty array of strings`);
  }
  const optional = (name: string): string | undefined => {
    const v = fields[name];
    if (v !== undefined && typeof v !== 'string') throw new UsageError(`${where}: "${name}" must be a string`);
    return v;
  };
  return { id: String(id), from, to, subject: optional('subject'), text: optional('text'), eml: optional('eml') };
}
