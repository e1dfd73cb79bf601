/**
 * What every case needs on the client's side: a source address of its own (so
 * the servers' logs tell our connections apart), a unique token per message,
 * the outcome of a transaction, and a check that no socket or timer was left open.
 */
import { randomBytes } from 'node:crypto';
import { Observable } from 'rxjs';
import { SendEvent } from '../../lib';

/** Per-case timeout for the client: a hang shows up as a wrong outcome, fast. */
export const CLIENT_TIMEOUT = 10_000;

const run = randomBytes(1).readUInt8(0);
let next = 0;

/**
 * A fresh loopback source address (127.R.x.y), distinct per connection and per
 * run, so that the lines Postfix logs for it belong to exactly this connection.
 */
export function sourceAddress(): { host: string } {
  next += 1;
  return { host: `127.${(run % 250) + 2}.${(next >> 8) & 255}.${next & 255 || 1}` };
}

/** A token to find one message again on the server (in a header, the body, a Message-ID). */
export function token(label: string): string {
  return `${label}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** A small, complete RFC 5322 message (complete, so Postfix adds no header of its own). */
export function message(id: string, to: string, body = 'Hello from the real-MTA suite.\r\n'): string {
  return (
    `From: rx-smtp <sender@client.test>\r\nTo: <${to}>\r\nSubject: ${id}\r\n` +
    `Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <${id}@client.test>\r\n\r\n${body}`
  );
}

/** The events of a transaction and how it ended. */
export interface Outcome {
  readonly events: SendEvent[];
  readonly error?: { code?: string; smtpCode?: number; [key: string]: unknown };
}

/** Runs a stream to its end, keeping every value and the error, if any. */
export function outcome<T = SendEvent>(source$: Observable<T>): Promise<{ events: T[]; error?: Outcome['error'] }> {
  const events: T[] = [];
  return new Promise((resolve) => {
    source$.subscribe({
      next: (e) => events.push(e),
      error: (error: Outcome['error']) => resolve({ events, error }),
      complete: () => resolve({ events }),
    });
  });
}

export const ofType = <K extends SendEvent['type']>(events: readonly SendEvent[], type: K) =>
  events.filter((e): e is Extract<SendEvent, { type: K }> => e.type === type);

const SOCKETS = new Set(['TCPSocketWrap', 'TLSWrap', 'TCPWRAP', 'TLSWRAP']);

/**
 * Fails when a socket the case opened is still open once it ended. Closing is
 * asynchronous (the 'close' event comes some loop turns after destroy, or after
 * the server's FIN once QUIT was answered), so it re-checks until a deadline.
 */
export async function expectNoOpenSockets(ms = 3_000): Promise<void> {
  const open = (): string[] => process.getActiveResourcesInfo().filter((r) => SOCKETS.has(r));
  const deadline = Date.now() + ms;
  while (open().length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  expect(open()).toEqual([]);
}
