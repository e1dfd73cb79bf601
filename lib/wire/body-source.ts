import { isAscii } from 'node:buffer';
import { isObservable, Observable } from 'rxjs';
import { SMTPInvalidArgumentError } from '../errors';

/** Every shape a message body may take. */
export type Body = string | Uint8Array | NodeJS.ReadableStream | AsyncIterable<Uint8Array> | Observable<Uint8Array>;

/** Options of `toChunks$`. */
export interface ChunkOptions {
  /**
   * Called before each chunk is taken from the body; when it returns a promise, nothing more is
   * taken until it settles (a rejection errors the stream). This is how socket backpressure
   * reaches the source: a writer returns a promise of 'drain' while the socket is full.
   */
  readonly ready?: () => Promise<void> | undefined;
  /** The largest chunk emitted, in bytes. Default 64 KiB. */
  readonly chunkSize?: number;
}

const DEFAULT_CHUNK_SIZE = 64 * 1024;

type Pulled = IteratorResult<Uint8Array, unknown>;
type AnyIterator = Iterator<unknown> | AsyncIterator<unknown>;

/**
 * Turns any `Body` into a cold stream of byte chunks, pulled one at a time.
 *
 * ```
 * body:   "héllo" (chunkSize 2)
 * result: (--"h\xc3"--"\xa9l"--"lo"--|)
 * ```
 *
 * A string is UTF-8 encoded, then sliced; a `Uint8Array` is sliced without copying; a Node
 * Readable or an AsyncIterable is pulled chunk by chunk (chunks over `chunkSize` are sliced;
 * strings from a Readable in string mode are UTF-8 encoded; empty ones are dropped). Before
 * each chunk `ready()` is awaited if it returns a promise, so a 1 GiB stream is never read ahead
 * of the socket. While `ready()` returns undefined and the body is in memory, chunks are emitted
 * synchronously. After 256 chunks or 1 MiB without a pause, the next pull waits for the next turn
 * of the event loop (`setImmediate`), so that a source that never waits does not starve timers
 * and other sockets.
 *
 * An Observable body is passed through untouched: it pushes, so it cannot be paused, and
 * backpressure is its producer's business.
 *
 * Unsubscribing stops pulling and calls the iterator's `return()`; a Readable is destroyed.
 * Errors of the source are forwarded.
 *
 * @example
 * toChunks$(fs.createReadStream('mail.eml'), { ready: () => writer.ready() }).pipe(encodeBody())
 *
 * @param body the message body.
 * @param options `ready` (the backpressure gate) and `chunkSize`.
 * @return a cold Observable of chunks.
 */
export function toChunks$(body: Body, options: ChunkOptions = {}): Observable<Uint8Array> {
  if (isObservable(body)) return body;
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new SMTPInvalidArgumentError(`chunkSize must be a positive integer, got ${chunkSize}`);
  }
  return new Observable<Uint8Array>((subscriber) => {
    const iterator = openIterator(body);
    const puller = new ChunkPuller(iterator, chunkSize);
    const turn = new TurnBudget();
    let finished = false;
    let pause: NodeJS.Immediate | undefined;
    const fail = (err: unknown): void => subscriber.error(err);
    /** Emits synchronously as long as neither the gate nor the source asks to wait. */
    const run = (): void => {
      pause = undefined;
      try {
        while (!subscriber.closed) {
          if (turn.spent()) return void (pause = setImmediate(run));
          const wait = options.ready?.();
          if (wait) return void wait.then(run, fail);
          const step = puller.pull();
          if (isPromise(step)) return void step.then((result) => deliver(result) && run(), fail);
          if (!deliver(step)) return;
        }
      } catch (err) {
        fail(err);
      }
    };
    /** Hands one result on; false once the source is exhausted. */
    const deliver = (result: Pulled): boolean => {
      if (subscriber.closed) return false;
      if (result.done) {
        finished = true;
        subscriber.complete();
        return false;
      }
      turn.charge(result.value.length);
      if (result.value.length > 0) subscriber.next(result.value);
      return true;
    };
    run();
    return () => {
      if (pause) clearImmediate(pause);
      if (!finished) release(body, iterator);
    };
  });
}

/** The body as an iterator of raw values: one value for in-memory bodies, the stream's own otherwise. */
function openIterator(body: Exclude<Body, Observable<Uint8Array>>): AnyIterator {
  if (typeof body === 'string' || body instanceof Uint8Array) return [body][Symbol.iterator]();
  if (typeof (body as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function') {
    return (body as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }
  throw new SMTPInvalidArgumentError(
    'A body must be a string, a Uint8Array, a Readable, an AsyncIterable or an Observable',
  );
}

/** Stops a source the subscriber no longer wants. */
function release(body: Body, iterator: AnyIterator): void {
  // Nobody listens any more, so a failure while closing has nowhere to go.
  const ignore = (): void => undefined;
  try {
    void Promise.resolve(iterator.return?.()).catch(ignore);
  } catch {
    ignore();
  }
  // An async generator that has not started, or is parked in a read, runs its cleanup late or
  // never: destroy a Readable directly so its file descriptor or socket is freed now.
  destroyBody(body);
}

/** Destroys a body that is a stream (a Readable, say), read to its end or not; a no-op for others. */
export function destroyBody(body: Body): void {
  const destroy = (body as { destroy?: unknown }).destroy;
  if (typeof destroy === 'function') (destroy as () => void).call(body);
}

/**
 * How much one uninterrupted run may emit before it lets the event loop turn. A source whose
 * promises are already resolved (an async generator over data in memory) is read in microtasks
 * only: without a pause, timers and other sockets would wait until the whole body is out.
 */
class TurnBudget {
  private static readonly CHUNKS = 256;
  private static readonly BYTES = 1024 * 1024;
  private chunks = 0;
  private bytes = 0;

  charge(bytes: number): void {
    this.chunks++;
    this.bytes += bytes;
  }

  /** True (once, then the budget is renewed) when the run should yield to the macrotask queue. */
  spent(): boolean {
    if (this.chunks < TurnBudget.CHUNKS && this.bytes < TurnBudget.BYTES) return false;
    this.chunks = 0;
    this.bytes = 0;
    return true;
  }
}

/** Pulls values from an iterator and hands them out as byte chunks of at most `chunkSize`. */
class ChunkPuller {
  private rest: Uint8Array | undefined;

  constructor(
    private readonly iterator: AnyIterator,
    private readonly chunkSize: number,
  ) {}

  /** Synchronous while a sliced value has bytes left or the iterator is synchronous. */
  pull(): Pulled | Promise<Pulled> {
    if (this.rest) return { done: false, value: this.slice(this.rest) };
    const step = this.iterator.next();
    return isPromise(step) ? step.then((result) => this.take(result)) : this.take(step);
  }

  private take(result: IteratorResult<unknown>): Pulled {
    return result.done ? result : { done: false, value: this.slice(toBytes(result.value)) };
  }

  private slice(bytes: Uint8Array): Uint8Array {
    const head = bytes.subarray(0, this.chunkSize);
    this.rest = bytes.length > this.chunkSize ? bytes.subarray(this.chunkSize) : undefined;
    return head;
  }
}

function toBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  throw new SMTPInvalidArgumentError(`A body chunk must be bytes or a string, got ${typeof value}`);
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Partial<Promise<T>>).then === 'function';
}

/** The body's size in bytes when known without reading it (in-memory bodies), else undefined. */
export function knownSize(body: Body): number | undefined {
  if (typeof body === 'string') return Buffer.byteLength(body, 'utf8');
  return body instanceof Uint8Array ? body.byteLength : undefined;
}

/**
 * Whether an in-memory body has a byte ≥ 0x80 (so it needs 8BITMIME, RFC 6152, or SMTPUTF8);
 * undefined for streams, which cannot be inspected without reading them.
 */
export function has8bit(body: Body): boolean | undefined {
  // Any code point above U+007F encodes to bytes ≥ 0x80 in UTF-8.
  if (typeof body === 'string') return /[^\x00-\x7f]/.test(body);
  return body instanceof Uint8Array ? !isAscii(body) : undefined;
}

/** What is known about a body before it is read: everything for an in-memory body, nothing for a stream. */
export interface BodyFacts {
  /** Its size in bytes as given: what BODY=BINARYMIME sends untouched. */
  readonly size?: number;
  /**
   * Its size once every CR, LF and CRLF is CRLF and its last line is closed, as the body encoder
   * sends it: RFC 1870 §3's message size for DATA; BDAT sends up to 2 bytes fewer (it does not
   * close the last line).
   */
  readonly canonicalSize?: number;
  /** The dots that start a line, which DATA doubles (RFC 5321 §4.5.2). */
  readonly lineLeadingDots?: number;
  /** Whether it holds a byte ≥ 0x80. */
  readonly has8bit?: boolean | undefined;
}

/**
 * The facts of a body, for `SIZE=` (RFC 1870) and `BODY=` (RFC 6152) before MAIL is sent. An
 * in-memory body is scanned once, line end by line end, without a copy; a stream yields `{}`.
 */
export function bodyFacts(body: Body): BodyFacts {
  const size = knownSize(body);
  if (size === undefined) return {};
  const { lineEndsAdded, lineLeadingDots } = lineStructure(body as string | Uint8Array);
  return { size, canonicalSize: size + lineEndsAdded, lineLeadingDots, has8bit: has8bit(body) };
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/**
 * Counts what the body encoder adds to a body: a byte for each bare CR or bare LF (each becomes
 * CRLF), a CRLF to close an unterminated last line, and the dots that would start a line. It
 * agrees with `BodyEncoder` on what a line end is; CR, LF and "." are one UTF-16 unit and one
 * UTF-8 byte, so a string is scanned as it is.
 */
function lineStructure(body: string | Uint8Array): { lineEndsAdded: number; lineLeadingDots: number } {
  const n = body.length;
  // Past either end: NaN from a string, undefined from bytes; neither is CR, LF or ".".
  const at: (i: number) => number | undefined = typeof body === 'string' ? (i) => body.charCodeAt(i) : (i) => body[i];
  const find: (byte: number, from: number) => number =
    typeof body === 'string'
      ? (byte, from) => body.indexOf(String.fromCharCode(byte), from)
      : (byte, from) => body.indexOf(byte, from);
  let lineEndsAdded = n > 0 && at(n - 1) !== CR && at(n - 1) !== LF ? 2 : 0;
  let lineLeadingDots = n > 0 && at(0) === DOT ? 1 : 0;
  // The next CR and the next LF at or after `i` (-1: none left).
  let cr = find(CR, 0);
  let lf = find(LF, 0);
  for (let i = 0; ;) {
    if (cr !== -1 && cr < i) cr = find(CR, i);
    if (lf !== -1 && lf < i) lf = find(LF, i);
    if (cr === -1 && lf === -1) break;
    const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
    if (at(end) === CR && at(end + 1) === LF) {
      i = end + 2;
    } else {
      lineEndsAdded++;
      i = end + 1;
    }
    if (at(i) === DOT) lineLeadingDots++;
  }
  return { lineEndsAdded, lineLeadingDots };
}
