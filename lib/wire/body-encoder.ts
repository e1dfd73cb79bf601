import { Observable, OperatorFunction } from 'rxjs';
import { SMTPInvalidArgumentError } from '../errors';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
// RFC 5321 §4.1.1.4: the data ends with a line holding a single ".".
const TERMINATOR = Buffer.from('.\r\n');
const EMPTY = Buffer.alloc(0);
// Measured on Node 20: below this many bytes a loop moves a run faster than `copyWithin`.
const SHORT_RUN = 16;

/** Options of `encodeBody` and `BodyEncoder`. */
export interface EncodeBodyOptions {
  /** Double a "." that starts a line (RFC 5321 §4.5.2). Default `true`: DATA needs it, BDAT must not have it. */
  readonly dotStuff?: boolean;
  /** Append the ".\r\n" that ends DATA (RFC 5321 §4.1.1.4). Default `true`. */
  readonly terminate?: boolean;
  /**
   * End a body that lacks it with CRLF. Defaults to `terminate`. With `terminate` it cannot be
   * `false`: the terminator is only recognised at the start of a line, so the body's last line
   * must be closed. Without `terminate` (BDAT, RFC 3030) the default is to send the octets the
   * caller gave, only canonicalising line ends inside them.
   */
  readonly finalCrlf?: boolean;
}

/**
 * The body encoder as a plain push/end object, for writers that pull and for benchmarks.
 *
 * Every bare CR and every bare LF becomes CRLF (RFC 5321 §2.3.8: CR and LF may only appear
 * together; a lone one is what SMTP smuggling exploits), and with `dotStuff` a line-leading "."
 * is doubled. Chunk boundaries may fall anywhere: the only state carried from one chunk to the
 * next is "the last chunk ended in CR" and "the next byte starts a line", so each input chunk
 * yields exactly one output buffer and nothing is held back.
 *
 * Output buffers may share memory with the input (when a chunk needs no change it is returned
 * as is), so a chunk must not be modified after it was pushed.
 */
export class BodyEncoder {
  private readonly dotStuff: boolean;
  private readonly terminate: boolean;
  private readonly finalCrlf: boolean;
  /** The previous chunk ended in CR and its CRLF is already out: a leading LF belongs to it. */
  private skipLF = false;
  /** The next byte starts a line. */
  private atLineStart = true;
  /** Insertions planned for the current chunk: `insertByte[k]` goes before input offset `insertAt[k]`. */
  // Small at first (most messages are short); doubled on demand.
  private insertAt = new Int32Array(32);
  private insertByte = new Uint8Array(32);
  private inserts = 0;

  constructor(options: EncodeBodyOptions = {}) {
    this.dotStuff = options.dotStuff ?? true;
    this.terminate = options.terminate ?? true;
    if (this.terminate && options.finalCrlf === false) {
      throw new SMTPInvalidArgumentError('finalCrlf: false contradicts terminate: the final "." must start a line');
    }
    this.finalCrlf = options.finalCrlf ?? this.terminate;
  }

  /** Encodes one chunk; the result may be empty (an empty chunk, or the LF of a split CRLF). */
  push(chunk: Uint8Array): Buffer {
    const input = asBuffer(chunk);
    const n = input.length;
    if (n === 0) return EMPTY;
    const start = this.skipLF && input[0] === LF ? 1 : 0;
    // A CR ending the chunk goes out as CRLF now; an LF opening the next chunk belongs to it.
    this.skipLF = input[n - 1] === CR;
    if (start === n) return EMPTY;
    this.inserts = 0;
    this.planInserts(input, start);
    this.atLineStart = input[n - 1] === CR || input[n - 1] === LF;
    return this.inserts === 0 ? input.subarray(start) : this.applyInserts(input, start);
  }

  /** Ends the body: closes its last line if needed, then appends the terminator if asked to. */
  end(): Buffer {
    const closeLine = this.finalCrlf && !this.atLineStart;
    this.atLineStart = true;
    if (closeLine) return this.terminate ? Buffer.concat([CRLF, TERMINATOR]) : Buffer.from(CRLF);
    return this.terminate ? Buffer.from(TERMINATOR) : EMPTY;
  }

  /**
   * Walks the line ends of `input[start..]`. Each LF is looked up once; CRs are looked up only
   * when the chunk has one, so LF-only text costs a single LF scan.
   */
  private planInserts(input: Buffer, start: number): void {
    const n = input.length;
    if (this.atLineStart) this.lineStart(input, start);
    let cr = input.indexOf(CR, start);
    let lf = input.indexOf(LF, start);
    for (;;) {
      // A CR right before the LF is the first half of a CRLF; every other CR is bare.
      const bareLimit = lf === -1 ? n : lf - 1;
      while (cr !== -1 && cr < bareLimit) {
        this.insert(cr + 1, LF);
        this.lineStart(input, cr + 1);
        cr = input.indexOf(CR, cr + 1);
      }
      if (lf === -1) break;
      if (cr !== -1 && cr === lf - 1) cr = input.indexOf(CR, lf + 1);
      else this.insert(lf, CR);
      this.lineStart(input, lf + 1);
      lf = input.indexOf(LF, lf + 1);
    }
  }

  /** RFC 5321 §4.5.2: a line starting with "." gets one more. */
  private lineStart(input: Buffer, at: number): void {
    if (this.dotStuff && at < input.length && input[at] === DOT) this.insert(at, DOT);
  }

  private insert(at: number, byte: number): void {
    if (this.inserts === this.insertAt.length) this.growInserts();
    this.insertAt[this.inserts] = at;
    this.insertByte[this.inserts++] = byte;
  }

  private growInserts(): void {
    const at = new Int32Array(this.insertAt.length * 2);
    const byte = new Uint8Array(this.insertByte.length * 2);
    at.set(this.insertAt);
    byte.set(this.insertByte);
    this.insertAt = at;
    this.insertByte = byte;
  }

  /**
   * Builds the output in one exactly-sized buffer: one bulk copy of the input, then, from the
   * last insertion back to the first, each run is moved right by the bytes inserted before it.
   * `copyWithin` is a memmove on the same buffer, so no per-run view or allocation is made.
   */
  private applyInserts(input: Buffer, start: number): Buffer {
    const out = Buffer.allocUnsafe(input.length - start + this.inserts);
    input.copy(out, 0, start);
    let runEnd = input.length - start;
    for (let k = this.inserts - 1; k >= 0; k--) {
      const at = this.insertAt[k] - start;
      moveRun(out, at, runEnd, k + 1);
      out[at + k] = this.insertByte[k];
      runEnd = at;
    }
    return out;
  }
}

/** Moves `out[from..to)` right by `by` bytes; a JS loop beats the builtin's call cost on short runs. */
function moveRun(out: Buffer, from: number, to: number, by: number): void {
  if (to - from > SHORT_RUN) {
    out.copyWithin(from + by, from, to);
    return;
  }
  for (let i = to - 1; i >= from; i--) out[i + by] = out[i];
}

function asBuffer(chunk: Uint8Array): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new SMTPInvalidArgumentError(`A body chunk must be a Uint8Array, got ${typeof chunk}`);
}

/**
 * Encodes a message body for the wire: CRLF canonicalisation, dot-stuffing and the DATA
 * terminator, streaming, whatever the chunking of the input.
 *
 * ```
 * source: --"a\n."--"b\r"--"\nc"--|
 * result: --"a\r\n.."--"b\r\n"--"c"--("\r\n.\r\n"|)
 * ```
 *
 * Each input chunk gives at most one output chunk (none when it encodes to nothing, such as the
 * LF of a CRLF split across chunks); nothing is buffered across chunks. Errors and early
 * unsubscription pass straight through.
 *
 * @example
 * // What follows DATA's 354 (RFC 5321 §4.1.1.4):
 * toChunks$(body).pipe(encodeBody())
 * // BDAT content (RFC 3030): no stuffing, no terminator, octets kept as given apart from line ends:
 * toChunks$(body).pipe(encodeBody({ dotStuff: false, terminate: false }))
 *
 * @param options `dotStuff` (default `true`), `terminate` (default `true`), `finalCrlf`
 * (default `terminate`).
 * @return an operator from body chunks to wire chunks.
 */
export function encodeBody(options: EncodeBodyOptions = {}): OperatorFunction<Uint8Array, Uint8Array> {
  return (source) =>
    new Observable<Uint8Array>((subscriber) => {
      const encoder = new BodyEncoder(options);
      return source.subscribe({
        next(chunk) {
          let out: Buffer;
          try {
            out = encoder.push(chunk);
          } catch (err) {
            subscriber.error(err);
            return;
          }
          if (out.length > 0) subscriber.next(out);
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          const tail = encoder.end();
          if (tail.length > 0) subscriber.next(tail);
          subscriber.complete();
        },
      });
    });
}
