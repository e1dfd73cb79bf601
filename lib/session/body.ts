import { Observable, OperatorFunction, map } from 'rxjs';
import { Outgoing, Payload, Turn } from '../transport/connection';
import { Command, command } from '../wire/command';
import type { SendEvent } from './sendmail';
import { Body, knownSize, toChunks$ } from '../wire/body-source';
import { encodeBody } from '../wire/body-encoder';
import { coalesce } from '../wire/coalesce';
import { Session } from './session';

/** The size the encoded chunks are merged up to: one write, or one BDAT (RFC 3030 §2), each. */
const BODY_CHUNK_SIZE = 64 * 1024;

/*
 * The body writers of a transaction, DATA and BDAT, small and streamed: what goes on the wire
 * between the envelope and the final reply, and the progress it makes.
 */

/**
 * A body's chunks, encoded, pulled from the source only while the socket can
 * take more (so memory stays flat whatever the size), each under the RFC 5321
 * §4.5.3.2 data-block timer. Tiny chunks of a fast source are merged, so a body
 * of 20,000 lines does not cost 20,000 writes or BDAT commands.
 */
export function bodyChunks$(
  session: Session,
  body: Body,
  encode: OperatorFunction<Uint8Array, Uint8Array>,
): Observable<Uint8Array> {
  const { connection, timeouts } = session;
  return toChunks$(body, { ready: () => connection.whenWritable() }).pipe(
    encode,
    coalesce(BODY_CHUNK_SIZE),
    connection.timeoutAfter<Uint8Array>('dataBlock', timeouts.dataBlock),
  );
}

/**
 * Writes a DATA body: line ends canonicalised, leading dots doubled (RFC 5321
 * §4.5.2), the last line closed; the final dot is the caller's. Emits the size
 * of each chunk written.
 */
export function writeDataBody$(session: Session, turn: Turn, body: Body): Observable<number> {
  return bodyChunks$(session, body, encodeBody({ dotStuff: true, terminate: false, finalCrlf: true })).pipe(
    map((chunk) => {
      turn.write(chunk);
      return chunk.length;
    }),
  );
}

/** The line that ends DATA (RFC 5321 §4.1.1.4). */
export const DOT_LINE = Buffer.from('.\r\n');

/**
 * The end of DATA as a request payload: the `body` parts (already encoded; none when the body
 * was streamed) then the dot, in one buffer, drawing `replies` replies (one for SMTP; one per
 * accepted recipient for LMTP, RFC 2033 §4.2).
 */
export function endOfData(replies: number, ...body: Uint8Array[]): Payload {
  const bytes = body.length ? Buffer.concat([...body, DOT_LINE]) : DOT_LINE;
  return { bytes, replies: Math.max(replies, 1), debugText: '.' };
}

/** A `progress` event each time this many more body bytes are written, and one at the end. */
const PROGRESS_STEP = 256 * 1024;

/** `BDAT n [LAST]` and its bytes; the command draws one reply, LMTP's LAST one per recipient. */
export function bdat(chunk: Uint8Array, last: boolean, replies: number): Outgoing[] {
  const cmd: Command = command('BDAT', [String(chunk.length), ...(last ? ['LAST'] : [])]);
  return [cmd, { bytes: chunk, replies: Math.max(replies, 1) - 1, debugText: `<${chunk.length} bytes>` }];
}

/** In-memory bodies up to this size skip the streaming machinery: encoded at once, written with their end. */
const SMALL_BODY = 64 * 1024;
/** An empty chunk: BDAT LAST of a body that ended on a chunk boundary. */
export const NO_BYTES = new Uint8Array(0);

/** The body's bytes when it is in memory and small, else undefined (it will be streamed). */
export function smallBody(body: Body): Uint8Array | undefined {
  const size = knownSize(body);
  if (size === undefined || size > SMALL_BODY) return undefined;
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : (body as Uint8Array);
}

export function progressOf(bytesSent: number): SendEvent {
  return { type: 'progress', bytesSent };
}

/** Turns written chunk sizes into `progress` events: one per PROGRESS_STEP bytes, and the total at the end. */
export function progress$(sizes$: Observable<number>): Observable<SendEvent> {
  return new Observable<SendEvent>((subscriber) => {
    let total = 0;
    let reported = -1;
    return sizes$.subscribe({
      next: (n) => {
        total += n;
        if (total - Math.max(reported, 0) >= PROGRESS_STEP) {
          reported = total;
          subscriber.next({ type: 'progress', bytesSent: total });
        }
      },
      error: (err: unknown) => subscriber.error(err),
      complete: () => {
        if (reported !== total) subscriber.next({ type: 'progress', bytesSent: total });
        subscriber.complete();
      },
    });
  });
}

/** Pairs each value with whether it is the last, holding one value back. */
export function withLast<T>(): OperatorFunction<T, { value: T; last: boolean }> {
  return (source$) =>
    new Observable((subscriber) => {
      let held: { value: T } | undefined;
      return source$.subscribe({
        next: (value) => {
          if (held) subscriber.next({ value: held.value, last: false });
          held = { value };
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          subscriber.next({ value: held ? held.value : (NO_BYTES as T), last: true });
          subscriber.complete();
        },
      });
    });
}
