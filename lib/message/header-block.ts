import { Observable, Subscriber } from 'rxjs';
import { SMTPInvalidArgumentError } from '../errors';

/** One header field of a message, as written and as read. */
export interface HeaderField {
  /**
   * The field name as written (case kept), without the colon and any blanks before it;
   * `''` for a line that is not a header field (kept verbatim, never read).
   */
  readonly name: string;
  /** The unfolded value (RFC 5322 §2.2.3): line breaks before blanks removed, outer blanks trimmed. */
  readonly value: string;
  /** The field's exact bytes, folded lines and line endings included. */
  readonly raw: Uint8Array;
}

/** The header block of a message. */
export interface ParsedHeaders {
  /** Every field in order; their `raw` bytes laid end to end are the block as written. */
  readonly fields: readonly HeaderField[];
  /**
   * The empty line that ended the block, exactly as written (`\r\n` or `\n`); empty when the
   * message had no empty line (it is all header).
   */
  readonly separator: Uint8Array;
}

/** What {@link splitHeaderBlock$} emits. */
export interface HeaderSplit {
  readonly headers: ParsedHeaders;
  /**
   * The bytes after the empty line, untouched: the tail of the chunk that held it, then every
   * later chunk as the source emits it. Subscribe to it once.
   */
  readonly rest$: Observable<Uint8Array>;
}

export interface SplitHeaderBlockOptions {
  /** The most header bytes buffered (the empty line not counted); default 256 KiB. */
  readonly maxHeaderBytes?: number;
}

export const DEFAULT_MAX_HEADER_BYTES = 256 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/**
 * Buffers the header block of a streamed RFC 5322 message, parses it, and hands on the body
 * as a stream: only the header is ever held, and it is bounded.
 *
 * ```
 * chunks$: --h--h+b--b--b--|
 * result:  -------r--------|      r = { headers, rest$ }
 * rest$:          b--b--b--|      (first b = the tail of the chunk that held the empty line)
 * ```
 *
 * The header ends at the first empty line. A line ends at CRLF, at a bare LF or at a bare CR:
 * the body encoder turns each of them into CRLF on the wire, so the fields read here are the
 * fields every recipient will see (`Subject: hi\rBcc: x` is two fields). A message with no empty
 * line is all header.
 *
 * The result mirrors the source's lifetime: it completes when the source completes, and
 * unsubscribing from it releases the source. Keep it subscribed while `rest$` is read (the
 * `concatMap`/`switchMap`/`mergeMap` pattern does); if it is released first, `rest$` errors
 * rather than end early, so a truncated body can never pass for a whole one; unsubscribing from
 * `rest$` releases the source too (and completes the result). Chunks the source pushes before
 * `rest$` is subscribed are held until then: subscribe when ready to write them.
 *
 * @example
 * splitHeaderBlock$(message$).pipe(
 *   concatMap(({ headers, rest$ }) => send$(envelopeFromHeaders(headers.fields),
 *     concat(of(stripBcc(headers.fields), headers.separator), rest$))),
 * );
 *
 * @param chunks$ the message bytes, in chunks of any size (never modified).
 * @param options.maxHeaderBytes the bound on the header block (default 256 KiB).
 * @return one `{ headers, rest$ }`; errors with SMTPInvalidArgumentError `header block too large`
 *   past the bound, or with the source's error while the header is read.
 */
export function splitHeaderBlock$(
  chunks$: Observable<Uint8Array>,
  options: SplitHeaderBlockOptions = {},
): Observable<HeaderSplit> {
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  return new Observable<HeaderSplit>((subscriber) => {
    const scanner = new HeaderScanner(maxHeaderBytes);
    let handoff: BodyHandoff | undefined;
    const emit = (header: Uint8Array, separator: Uint8Array): BodyHandoff => {
      // A consumer that drops rest$ is done with the message: release the source.
      const created = new BodyHandoff(() => subscriber.complete());
      subscriber.next({ headers: parseHeaderBlock(header, separator), rest$: created.rest$ });
      return created;
    };
    const subscription = chunks$.subscribe({
      next: (chunk) => {
        if (handoff) return handoff.next(chunk);
        if (subscriber.closed) return; // a synchronous source still running after an error
        let found: ReturnType<HeaderScanner['push']>;
        try {
          found = scanner.push(chunk);
        } catch (err) {
          return subscriber.error(err);
        }
        if (!found) return;
        handoff = emit(found.header, found.separator);
        if (found.tail.length > 0) handoff.next(found.tail);
      },
      error: (err: unknown) => {
        handoff?.error(err);
        subscriber.error(err);
      },
      complete: () => {
        if (subscriber.closed && !handoff) return;
        if (!handoff) {
          const found = scanner.finish();
          handoff = emit(found.header, found.separator);
        }
        handoff.complete();
        subscriber.complete();
      },
    });
    return () => {
      subscription.unsubscribe();
      handoff?.release();
    };
  });
}

/** Where a `HeaderScanner` stands after the bytes it has seen. */
const enum At {
  /** At the start of a line (of the message, or after an LF or a CRLF). */
  LineStart,
  /** At the start of a line that a CR ended: an LF now completes that CRLF. */
  LineStartAfterCr,
  /** A CR opened a line: the empty line; an LF now is its second half. */
  EmptyLineCr,
  /** Inside a line. */
  InLine,
}

type Split = { header: Uint8Array; separator: Uint8Array; tail: Uint8Array };

/**
 * Finds the end of the header block across chunks, holding only header bytes. Its line ends are
 * the body encoder's: CRLF, bare LF, bare CR.
 */
class HeaderScanner {
  private readonly held: Uint8Array[] = [];
  private heldBytes = 0;
  private at: At = At.LineStart;

  constructor(private readonly maxHeaderBytes: number) {}

  /**
   * Feeds one chunk; returns the split once the empty line is found.
   * @throws SMTPInvalidArgumentError once the header outgrows the bound.
   */
  push(chunk: Uint8Array): Split | undefined {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      switch (this.at) {
        case At.InLine:
          if (byte === LF) this.at = At.LineStart;
          else if (byte === CR) this.at = At.LineStartAfterCr;
          break;
        case At.EmptyLineCr:
          // `\r\n`, or a bare `\r` whose line the byte after it already belongs to.
          return byte === LF ? this.split(chunk, i + 1, 2) : this.split(chunk, i, 1);
        default:
          if (byte === LF && this.at === At.LineStart) return this.split(chunk, i + 1, 1);
          if (byte === CR) this.at = At.EmptyLineCr;
          else if (byte !== LF) this.at = At.InLine;
          else this.at = At.LineStart;
      }
    }
    this.hold(chunk);
    return undefined;
  }

  /** The source ended: the header, and the empty line if a bare CR at the very end was one. */
  finish(): Split {
    const empty = new Uint8Array(0);
    return this.at === At.EmptyLineCr ? this.split(empty, 0, 1) : { header: this.all(), separator: empty, tail: empty };
  }

  private all(): Uint8Array {
    return concatBytes(this.held, this.heldBytes);
  }

  /** The block ends `end` bytes into `chunk`, with an empty line of `separatorLength` bytes. */
  private split(chunk: Uint8Array, end: number, separatorLength: 1 | 2): Split {
    this.hold(chunk.subarray(0, end), separatorLength);
    const block = this.all();
    const headerLength = block.length - separatorLength;
    return {
      header: block.subarray(0, headerLength),
      separator: block.subarray(headerLength),
      tail: chunk.subarray(end),
    };
  }

  /** Holds header bytes; `notHeader` of them (a CR that may open the empty line, or the empty line) do not count. */
  private hold(bytes: Uint8Array, notHeader: number = this.at === At.EmptyLineCr ? 1 : 0): void {
    this.heldBytes += bytes.length;
    if (this.heldBytes - notHeader > this.maxHeaderBytes) {
      throw new SMTPInvalidArgumentError(`header block too large: no empty line within ${this.maxHeaderBytes} bytes`);
    }
    if (bytes.length > 0) this.held.push(bytes);
  }
}

type BodyEvent = { kind: 'next'; chunk: Uint8Array } | { kind: 'error'; err: unknown } | { kind: 'complete' };

/**
 * Passes the body from the splitter's source subscription to the one `rest$` subscriber,
 * holding only what arrives before that subscriber does.
 */
class BodyHandoff {
  private queue: BodyEvent[] | undefined = [];
  private target: Subscriber<Uint8Array> | undefined;
  private claimed = false;
  private done = false;

  constructor(private readonly onAbandon: () => void) {}

  readonly rest$ = new Observable<Uint8Array>((subscriber) => {
    if (this.claimed) {
      subscriber.error(
        new SMTPInvalidArgumentError('rest$ can be subscribed to only once: the body is not replayable'),
      );
      return undefined;
    }
    this.claimed = true;
    const queued = this.queue ?? [];
    this.queue = undefined;
    this.target = subscriber;
    for (const event of queued) this.emit(event);
    return () => {
      this.target = undefined;
      if (this.done) return;
      this.done = true;
      this.onAbandon();
    };
  });

  next(chunk: Uint8Array): void {
    this.accept({ kind: 'next', chunk });
  }

  error(err: unknown): void {
    this.accept({ kind: 'error', err });
  }

  complete(): void {
    this.accept({ kind: 'complete' });
  }

  /** The source was released: a body not yet wholly read must not look complete. */
  release(): void {
    this.error(new SMTPInvalidArgumentError('the message source was released before its body was read'));
  }

  private accept(event: BodyEvent): void {
    if (this.done) return;
    if (event.kind !== 'next') this.done = true;
    if (this.queue) this.queue.push(event);
    else this.emit(event);
  }

  private emit(event: BodyEvent): void {
    const target = this.target;
    if (!target) return;
    if (event.kind === 'next') target.next(event.chunk);
    else if (event.kind === 'error') target.error(event.err);
    else target.complete();
  }
}

function concatBytes(parts: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

// RFC 5322 §3.6.8: ftext is any printable ASCII but ':'; obs-optional (§4.5) allows blanks before it.
const FIELD_NAME = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

/**
 * Parses a header block (without its empty line) into fields.
 *
 * @param block the header bytes.
 * @param separator the empty line that ended them.
 * @return the fields, each with its raw bytes.
 */
export function parseHeaderBlock(block: Uint8Array, separator: Uint8Array): ParsedHeaders {
  const fields: HeaderField[] = [];
  let start = 0;
  while (start < block.length) {
    const end = fieldEnd(block, start);
    fields.push(parseField(block.subarray(start, end)));
    start = end;
  }
  return { fields, separator };
}

/** The end of the field that starts at `start`: after the first line end not followed by a blank. */
function fieldEnd(block: Uint8Array, start: number): number {
  let end = lineEnd(block, start);
  while (end !== -1 && (block[end] === 0x20 || block[end] === 0x09)) end = lineEnd(block, end);
  return end === -1 ? block.length : end;
}

/** Just after the first line end (CRLF, LF or CR, as the body encoder reads them) at or after `from`; -1 if none. */
function lineEnd(block: Uint8Array, from: number): number {
  const lf = block.indexOf(LF, from);
  const cr = block.indexOf(CR, from);
  if (cr === -1 || (lf !== -1 && lf < cr)) return lf === -1 ? -1 : lf + 1;
  return block[cr + 1] === LF ? cr + 2 : cr + 1;
}

function parseField(raw: Uint8Array): HeaderField {
  // RFC 6532 §3.2: header values may be UTF-8.
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  const unfolded = text.replace(/(?:\r\n|\r|\n)(?=[ \t])/g, '').replace(/(?:\r\n|\r|\n)$/, '');
  const match = FIELD_NAME.exec(unfolded);
  if (match?.[1] === undefined) return { name: '', value: unfolded, raw };
  return { name: match[1], value: unfolded.slice(match[0].length).trim(), raw };
}
