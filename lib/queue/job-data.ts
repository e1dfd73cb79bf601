import {
  closeSync,
  constants,
  createReadStream,
  fstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  statSync,
  type Stats,
} from 'node:fs';
import * as path from 'node:path';
import { SMTPInvalidArgumentError } from '../errors';
import { mailboxForWire, reversePathForWire } from '../message/mailbox';
import type { PoolMessage } from '../pool/outcome';
import { checkParam, mailOptionsOf, notifyValue, rcptOptionsOf } from '../session/envelope';
import type { MailOptions, RcptOptions, Recipient } from '../session/envelope';
import { checkArgument } from '../wire/command';
import type { Body } from '../wire/body-source';

/**
 * A body as it can wait in Redis: text, bytes, or a reference the worker resolves when it sends
 * (a file under the worker's `spoolDir`), so that big bodies do not sit in Redis. A stream cannot be queued:
 * store it, and queue its reference.
 */
export type QueueBody = string | Uint8Array | { readonly ref: string };

/**
 * A message for the queue: the pool's `PoolMessage`, with a body that can wait in Redis. Its `id`
 * becomes the job id, so adding the same id twice queues it once (while the job is kept).
 */
// The hooks are the worker's own (the marker, progress): a function cannot travel through Redis.
export interface QueueMessage<Id extends string = string> extends Omit<
  PoolMessage<Id>,
  'body' | 'beforeEnd' | 'onEvent'
> {
  readonly body: QueueBody;
}

/** A message without its body: what an outcome carries back. */
export type QueueEnvelope<Id extends string = string> = Omit<QueueMessage<Id>, 'body'>;

/** How a body is stored in a job (JSON). */
type StoredBody = { readonly text: string } | { readonly base64: string } | { readonly ref: string };

/** A job's data in Redis (JSON): the envelope, the body as stored, and what a retry needs. */
export interface JobData {
  readonly from: string;
  readonly to: string | readonly (string | Recipient)[];
  readonly body: StoredBody;
  readonly mailOptions?: MailOptions;
  readonly rcptOptions?: RcptOptions;
  readonly id?: string;
  /** The longest wait between two tries (`RetryPolicy.maxBackoffMs`); the worker's backoff reads it. */
  readonly maxBackoffMs?: number;
}

/** Turns a body reference into the body to send; called once per attempt. */
export type BodyResolver = (ref: string) => Body;

/**
 * The resolver of a worker given a `spoolDir`: a reference is a regular file under that directory
 * (a path relative to it, or an absolute one inside it), streamed. The reference is job data, so
 * untrusted: one that leads outside (`..`, another absolute path, a symbolic link out), names
 * something other than a regular file (a directory, a FIFO, a socket), has a NUL, or names a file
 * with other hard links is refused with `SMTPInvalidArgumentError` before anything is written, and
 * the message ends `refused`. The file is opened at once (without blocking, never through a final
 * symbolic link) and the file opened is the one checked, so an open that fails (a file gone or not
 * readable) fails the message there and then. The spool must be writable only by trusted producers.
 *
 * @param dir the spool directory: it must exist and be a directory (relative: to the working
 *   directory at start). `''` and `/` are refused (they would confine nothing).
 */
export function spoolDirectory(dir: string): BodyResolver {
  if (typeof dir !== 'string' || dir === '') throw invalid('spoolDir must be a non-empty path');
  const given = path.resolve(dir);
  let root: string;
  try {
    root = realpathSync(given);
  } catch (err) {
    throw invalid(`spoolDir ${JSON.stringify(dir)} cannot be used: ${(err as Error).message}`);
  }
  if (!statSync(root).isDirectory()) throw invalid(`spoolDir ${JSON.stringify(dir)} is not a directory`);
  if (path.dirname(root) === root)
    throw invalid(`spoolDir ${JSON.stringify(dir)} is the root: it would confine nothing`);
  const within = (base: string, file: string): boolean => {
    const inside = path.relative(base, file);
    return inside !== '' && inside !== '..' && !inside.startsWith(`..${path.sep}`) && !path.isAbsolute(inside);
  };
  return (ref) => {
    const refuse = (why: string) =>
      invalid(`the body reference ${JSON.stringify(ref)} ${why} (spool directory ${root})`);
    // By its text first: a reference that points elsewhere learns nothing of what is there.
    const named = path.resolve(root, ref);
    if (ref.includes('\0') || !(within(root, named) || within(given, path.resolve(given, ref))))
      throw refuse('is not a path inside the spool directory');
    const real = realpathSync(named);
    if (!within(root, real)) throw refuse('leads outside the spool directory');
    const fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    try {
      const opened = fstatSync(fd);
      if (!opened.isFile()) throw refuse('is not a regular file');
      if (opened.nlink !== 1) throw refuse('is a file with other hard links');
      // The file opened is the file checked: a path swapped between the two is caught here (Linux
      // names the file behind the descriptor; elsewhere the path must still lead to the same file).
      const actual = openedPath(fd);
      if (actual !== undefined ? !within(root, actual) : !sameFile(statSync(real), opened))
        throw refuse('changed while it was opened');
      return createReadStream('', { fd });
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  };
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** The path of the file behind `fd`, where the system tells it (Linux's /proc); else undefined. */
function openedPath(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** The resolver of a worker given neither `spoolDir` nor `resolveBody`: it reads no file. */
export const noSpool: BodyResolver = (ref) => {
  throw invalid(
    `the body reference ${JSON.stringify(ref)} cannot be read: start the worker with spoolDir (or resolveBody)`,
  );
};

/**
 * A message as job data, checked as the session would check it before MAIL: the addresses
 * (RFC 5321; UTF-8 allowed here, the server's SMTPUTF8 is checked when it is sent), the MAIL and
 * RCPT options (whatever the server will offer: a job meets its server later), the body's type,
 * and the id (BullMQ's rules: not an integer, no `:`).
 *
 * @throws SMTPInvalidArgumentError before anything reaches Redis.
 */
export function toJobData<Id extends string>(message: QueueMessage<Id>, maxBackoffMs?: number): JobData {
  // From JavaScript anything may come: a clear error rather than a TypeError below.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  if (typeof message !== 'object' || message === null)
    throw invalid(`a message must be an object, got ${typeof message}`);
  const { from, to, mailOptions, rcptOptions, id } = message;
  if (typeof from !== 'string') throw invalid('from must be a string');
  reversePathForWire(from, { smtputf8: true });
  const list = typeof to === 'string' ? [to] : to;
  if (!Array.isArray(list) || list.length === 0) throw invalid('to must be an address or a non-empty list of them');
  for (const r of list) {
    mailboxForWire(typeof r === 'string' ? r : addressOf(r), { smtputf8: true });
    if (typeof r !== 'string') checkRcptOptions(r, `the options of ${addressOf(r)}`);
  }
  checkMailOptions(mailOptions);
  if (rcptOptions !== undefined) checkRcptOptions(rcptOptions, 'rcptOptions');
  if (id !== undefined) checkJobId(id);
  return {
    from,
    to,
    body: storeBody(message.body),
    ...(mailOptions && { mailOptions }),
    ...(rcptOptions && { rcptOptions }),
    ...(id !== undefined && { id }),
    ...(maxBackoffMs !== undefined && { maxBackoffMs }),
  };
}

const BODY_TYPES: readonly string[] = ['7BIT', '8BITMIME', 'BINARYMIME'] satisfies MailOptions['body'][];
const RET_TYPES: readonly string[] = ['FULL', 'HDRS'] satisfies MailOptions['ret'][];

/** A value from a list, or nothing. */
function oneOf(value: unknown, allowed: readonly string[], what: string): void {
  if (value !== undefined && !allowed.includes(value as string))
    throw invalid(`${what} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
}

function isOptions(options: unknown): options is object {
  return typeof options === 'object' && options !== null;
}

/** MAIL's options, as the session checks those it sends to any server. */
function checkMailOptions(options: unknown): void {
  if (options === undefined) return;
  if (!isOptions(options)) throw invalid('mailOptions must be an object');
  const { params, body, ret, envid } = mailOptionsOf(options);
  checkParams(params, 'mailOptions.params');
  oneOf(body, BODY_TYPES, 'mailOptions.body');
  oneOf(ret, RET_TYPES, 'mailOptions.ret');
  if (envid !== undefined && typeof envid !== 'string') throw invalid('mailOptions.envid must be a string');
}

/** RCPT's options (the message's, or one recipient's). */
function checkRcptOptions(options: unknown, what: string): void {
  if (!isOptions(options)) throw invalid(`${what} must be an object`);
  const { params, notify, orcpt } = rcptOptionsOf(options);
  checkParams(params, `${what}: params`);
  if (notify !== undefined) {
    if (notify !== 'NEVER' && !Array.isArray(notify))
      throw invalid(`${what}: notify must be 'NEVER' or a list of SUCCESS, FAILURE, DELAY`);
    notifyValue(notify);
  }
  if (orcpt !== undefined) {
    if (typeof orcpt !== 'string') throw invalid(`${what}: orcpt must be a string`);
    checkArgument(orcpt, 'ORCPT');
  }
}

function checkParams(params: unknown, what: string): void {
  if (params === undefined) return;
  if (!Array.isArray(params)) throw invalid(`${what} must be a list of strings`);
  for (const param of params) {
    if (typeof param !== 'string') throw invalid(`${what} must be a list of strings`);
    checkParam(param);
  }
}

/**
 * The message a worker hands to its pool: the body decoded, a reference resolved afresh for
 * every attempt (a stream is read once).
 */
export function toPoolMessage(data: JobData, resolve: BodyResolver): PoolMessage<string> {
  const { from, to, mailOptions, rcptOptions, id } = data;
  const stored = data.body;
  const body =
    'text' in stored
      ? stored.text
      : 'base64' in stored
        ? Buffer.from(stored.base64, 'base64')
        : () => resolve(stored.ref);
  return {
    from,
    to,
    body,
    ...(mailOptions && { mailOptions }),
    ...(rcptOptions && { rcptOptions }),
    ...(id !== undefined && { id }),
  };
}

/** The envelope of a job's message, for its outcome. */
export function envelopeOf<Id extends string>(data: JobData): QueueEnvelope<Id> {
  const { from, to, mailOptions, rcptOptions, id } = data;
  return {
    from,
    to,
    ...(mailOptions && { mailOptions }),
    ...(rcptOptions && { rcptOptions }),
    ...(id !== undefined && { id: id as Id }),
  };
}

function storeBody(body: unknown): StoredBody {
  if (typeof body === 'string') return { text: body };
  if (body instanceof Uint8Array)
    return { base64: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64') };
  if (typeof body === 'object' && body !== null && typeof (body as { ref?: unknown }).ref === 'string') {
    const { ref } = body as { ref: string };
    if (ref === '') throw invalid('a body reference must not be empty');
    return { ref };
  }
  throw invalid('a queued body must be a string, bytes or { ref }: store a stream and queue its reference');
}

function addressOf(recipient: unknown): string {
  const address = (recipient as { address?: unknown } | null)?.address;
  if (typeof address !== 'string') throw invalid('a recipient must be an address or { address, … }');
  return address;
}

/** BullMQ's rules for a custom job id (`Job.addJob`): a string, not an integer, without `:`. */
function checkJobId(id: unknown): void {
  if (typeof id !== 'string' || id === '') throw invalid('id must be a non-empty string');
  if (id.includes(':'))
    throw invalid(`id ${JSON.stringify(id)} must not contain ':' (BullMQ keys are separated by it)`);
  if (String(parseInt(id, 10)) === id)
    throw invalid(`id ${JSON.stringify(id)} must not be an integer (BullMQ numbers its own jobs)`);
}

function invalid(text: string): SMTPInvalidArgumentError {
  return new SMTPInvalidArgumentError(`rx-smtp/queue: ${text}`);
}
