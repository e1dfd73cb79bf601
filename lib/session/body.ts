import { Observable, OperatorFunction, map } from 'rxjs';
import { Payload, Turn } from '../transport/connection';
import { Body, toChunks$ } from '../wire/body-source';
import { encodeBody } from '../wire/body-encoder';
import { coalesce } from '../wire/coalesce';
import { Session } from './session';

/** The size the encoded chunks are merged up to: one write, or one BDAT (RFC 3030 §2), each. */
const BODY_CHUNK_SIZE = 64 * 1024;

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
