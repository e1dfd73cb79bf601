import { Observable, OperatorFunction } from 'rxjs';
import { SMTPProtocolError, SMTPReplyLimitError } from '../errors';

/** One SMTP reply, possibly multi-line. */
export interface Reply {
  /** The three-digit reply code. */
  readonly code: number;
  /** The text of every line joined with "\n" (smtplib's `msg`). */
  readonly message: string;
  /** The text of each line, without the code and separator. */
  readonly lines: readonly string[];
  /** The RFC 3463 enhanced status code of the first line, e.g. `"2.1.5"`. */
  readonly enhancedStatus?: string;
}

/** Limits on what a server may send; every one of them is under the server's control. */
export interface ReplyLimits {
  /** Bytes on one line, its CRLF (or bare LF) included: smtplib's `_MAXLINE`, 8192. */
  readonly maxLineLength: number;
  /** Lines in one reply. */
  readonly maxLines: number;
  /** Bytes in one reply, all lines together. */
  readonly maxReplyBytes: number;
}

/**
 * The bounds a reply is held to unless the caller sets others: generous for any real server, finite for a hostile one.
 */
export const DEFAULT_REPLY_LIMITS: ReplyLimits = {
  maxLineLength: 8192,
  maxLines: 1000,
  maxReplyBytes: 1024 * 1024,
};

const CR = 0x0d;
const LF = 0x0a;
// RFC 3463 §2: class.subject.detail; the class must agree with the reply code.
const ENHANCED_STATUS = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

/**
 * Incremental reply parser: feed it socket chunks, it returns the replies they
 * complete. Chunk boundaries may fall anywhere, even between CR and LF.
 *
 * Lines end at LF (a preceding CR is dropped), as smtplib reads them. A reply
 * line is `ddd-text` (more lines follow), `ddd text` or `ddd` (last line).
 */
export class ReplyParser {
  private partial: Buffer[] = [];
  private partialLength = 0;
  private lines: string[] = [];
  private replyBytes = 0;
  private code = 0;

  constructor(private readonly limits: ReplyLimits = DEFAULT_REPLY_LIMITS) {}

  /** Bytes received that are not yet part of a complete reply. */
  get buffered(): number {
    return this.partialLength + this.replyBytes;
  }

  /**
   * Parses a chunk: appends the replies it completes to `replies` and returns it. Throws
   * `SMTPReplyLimitError` past a limit, `SMTPProtocolError` on a malformed reply; the replies
   * completed before the violation are in `replies` by then, so pass your own array to keep
   * them: what was read before a fault must not depend on how the bytes were cut into chunks.
   */
  push(chunk: Uint8Array, replies: Reply[] = []): Reply[] {
    let start = 0;
    for (;;) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) break;
      this.checkLineLength(this.partialLength + lf + 1 - start);
      const line = this.takeLine(chunk, start, lf);
      start = lf + 1;
      const reply = this.addLine(line);
      if (reply) replies.push(reply);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      // The line is at least one LF longer than what has come of it (a trailing CR is the first
      // half of a CRLF split across chunks, so it counts): refuse it now, not once it ends.
      this.checkLineLength(this.partialLength + rest.length + 1);
      this.partial.push(Buffer.from(rest));
      this.partialLength += rest.length;
    }
    return replies;
  }

  /** `length`: the line's bytes, its line end included (smtplib reads `_MAXLINE + 1` and compares). */
  private checkLineLength(length: number): void {
    if (length > this.limits.maxLineLength) {
      // smtplib's wording, but not its SMTPResponseException(500): the server said nothing.
      throw new SMTPReplyLimitError('Line too long.');
    }
  }

  private takeLine(chunk: Uint8Array, start: number, lf: number): Buffer {
    let line: Buffer;
    if (this.partialLength === 0) {
      line = Buffer.from(chunk.buffer, chunk.byteOffset + start, lf - start);
    } else {
      this.partial.push(Buffer.from(chunk.subarray(start, lf)));
      line = Buffer.concat(this.partial);
      this.partial = [];
      this.partialLength = 0;
    }
    return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
  }

  private addLine(raw: Buffer): Reply | undefined {
    const line = raw.toString('utf8');
    const code = replyCode(line);
    if (code < 0) {
      throw new SMTPProtocolError(`Malformed reply line: ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (this.lines.length > 0 && code !== this.code) {
      throw new SMTPProtocolError(`Reply code changed inside a multi-line reply: ${this.code} then ${code}`);
    }
    this.code = code;
    this.replyBytes += raw.length;
    this.lines.push(line.length > 4 ? trimBlanks(line.slice(4)) : '');
    if (this.lines.length > this.limits.maxLines || this.replyBytes > this.limits.maxReplyBytes) {
      throw new SMTPReplyLimitError(
        `Reply too large (over ${this.limits.maxLines} lines or ${this.limits.maxReplyBytes} bytes)`,
      );
    }
    if (line.charCodeAt(3) === DASH) return undefined;
    const reply = makeReply(code, this.lines);
    this.lines = [];
    this.replyBytes = 0;
    return reply;
  }
}

const DASH = 0x2d;
const SPACE = 0x20;
const TAB = 0x09;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isBlank = (c: number): boolean => c === SPACE || c === TAB;

/** The code of a reply line (`ddd`, `ddd text` or `ddd-text`), or -1 when the line is malformed. */
function replyCode(line: string): number {
  const a = line.charCodeAt(0);
  const b = line.charCodeAt(1);
  const c = line.charCodeAt(2);
  if (!(isDigit(a) && isDigit(b) && isDigit(c))) return -1;
  if (line.length > 3 && line.charCodeAt(3) !== SPACE && line.charCodeAt(3) !== DASH) return -1;
  return (a - 0x30) * 100 + (b - 0x30) * 10 + (c - 0x30);
}

/** Strips leading and trailing spaces and tabs from a line's text (its CRLF is already gone). */
function trimBlanks(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isBlank(text.charCodeAt(start))) start++;
  while (end > start && isBlank(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/**
 * Builds a `Reply`, picking up the enhanced status code when the first line has one. The reply
 * keeps `lines` (the parser starts a new array for the next reply).
 */
function makeReply(code: number, lines: readonly string[]): Reply {
  const first = lines[0] ?? '';
  const message = lines.length === 1 ? first : lines.join('\n');
  // "d." opens every enhanced status code: most lines are ruled out without the regex.
  const status = first.charCodeAt(1) === 0x2e ? ENHANCED_STATUS.exec(first) : null;
  return status && Number(status[1]) === Math.floor(code / 100)
    ? { code, message, lines, enhancedStatus: status[0] }
    : { code, message, lines };
}

/**
 * Turns a stream of socket chunks into a stream of replies.
 *
 * ```
 * chunks:  --"250-a\r\n2"--"50 b\r"--"\n"--|
 * replies: ---------------------------R----|
 * ```
 *
 * A violation (line too long, malformed line, too many lines) errors the
 * stream after the replies completed before it; the caller then closes the connection.
 *
 * @param limits bounds on line length, lines per reply and bytes per reply.
 * @return an operator from chunks to `Reply` objects.
 */
export function parseReplies(limits: ReplyLimits = DEFAULT_REPLY_LIMITS): OperatorFunction<Uint8Array, Reply> {
  return (chunks$) =>
    new Observable<Reply>((subscriber) => {
      const parser = new ReplyParser(limits);
      return chunks$.subscribe({
        next(chunk) {
          const replies: Reply[] = [];
          let failure: { err: unknown } | undefined;
          try {
            parser.push(chunk, replies);
          } catch (err) {
            failure = { err };
          }
          // The replies completed before a violation first, as they would be from a chunk of their own.
          for (const reply of replies) subscriber.next(reply);
          if (failure) subscriber.error(failure.err);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
    });
}

/** True for 2xx replies. */
export const isPositive = (reply: Reply): boolean => reply.code >= 200 && reply.code < 300;
