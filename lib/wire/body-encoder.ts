import { Observable, OperatorFunction } from 'rxjs';
import { SMTPInvalidArgumentError } from '../errors';
import { encodeSpan, MAX_SPAN } from './encoder-kernel';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
// RFC 5321 §4.1.1.4: the data ends with a line holding a single ".".
const TERMINATOR = Buffer.from('.\r\n');
const EMPTY = Buffer.alloc(0);

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
 * yields exactly one output buffer and nothing is held back. The bytes are moved by a small
 * WebAssembly kernel (encoder.wat): a JS encoder pays a native call per line end, and text has
 * one every few dozen bytes. Where WebAssembly or its SIMD is unavailable (`node --jitless`), a
 * plain JS loop with the same output takes over (encoder-kernel.ts).
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
    if (input.length <= MAX_SPAN) return this.pushSpan(input);
    // The kernel's memory is sized for MAX_SPAN: a bigger chunk goes as consecutive spans, which
    // encode as it would whole since chunk boundaries may fall anywhere.
    const start = this.skipLF && input[0] === LF ? 1 : 0;
    const parts: Buffer[] = [];
    let length = 0;
    for (let from = 0; from < input.length; from += MAX_SPAN) {
      const part = this.pushSpan(input.subarray(from, from + MAX_SPAN));
      parts.push(part);
      length += part.length;
    }
    // The encoding only ever adds bytes to what follows `start`: the same length is the same bytes.
    return length === input.length - start ? input.subarray(start) : Buffer.concat(parts, length);
  }

  /** Ends the body: closes its last line if needed, then appends the terminator if asked to. */
  end(): Buffer {
    const closeLine = this.finalCrlf && !this.atLineStart;
    this.atLineStart = true;
    if (closeLine) return this.terminate ? Buffer.concat([CRLF, TERMINATOR]) : Buffer.from(CRLF);
    return this.terminate ? Buffer.from(TERMINATOR) : EMPTY;
  }

  /** Encodes a chunk of at most MAX_SPAN bytes. */
  private pushSpan(input: Buffer): Buffer {
    const n = input.length;
    if (n === 0) return EMPTY;
    const start = this.skipLF && input[0] === LF ? 1 : 0;
    // A CR ending the chunk goes out as CRLF now; an LF opening the next chunk belongs to it.
    this.skipLF = input[n - 1] === CR;
    if (start === n) return EMPTY;
    const out = encodeSpan(input, start, this.dotStuff, this.atLineStart);
    this.atLineStart = input[n - 1] === CR || input[n - 1] === LF;
    return out;
  }
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
