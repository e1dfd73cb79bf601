import { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** A message as the embedded server took it: the demo id from its header, and its recipients. */
export interface Received {
  readonly id: string;
  readonly to: readonly string[];
}

export interface MailServer {
  readonly port: number;
  readonly received: Received[];
  close(): Promise<void>;
}

export interface MailServerOptions {
  /** Awaited before each MAIL FROM is answered; tests hold messages here to act mid-batch. Default: none. */
  readonly beforeMail?: () => Promise<void>;
  /** The longest random delay before a reply, in ms. Default 40. */
  readonly maxDelayMs?: number;
  /** The chance that a recipient is deferred with 451 on one attempt. Default 0.2. */
  readonly deferRate?: number;
}

/**
 * The demo's receiving end, smtp-server on 127.0.0.1: refuses `nobody@`
 * (550, permanent), defers any recipient by chance (451, so the pool's
 * retries show), and answers after a small random delay so progress is visible.
 */
export async function startMailServer(options: MailServerOptions = {}): Promise<MailServer> {
  const { beforeMail = () => Promise.resolve(), maxDelayMs = 40, deferRate = 0.2 } = options;
  const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.random() * maxDelayMs));
  const received: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onMailFrom(_address, _session, callback) {
      void beforeMail()
        .then(pause)
        .then(() => callback());
    },
    onRcptTo({ address }, _session, callback) {
      void pause().then(() => callback(rcptVerdict(address, deferRate)));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const id = /^X-Demo-Id: (\S+)/m.exec(Buffer.concat(chunks).toString('latin1'))?.[1] ?? '?';
        void pause().then(() => {
          received.push({ id, to: session.envelope.rcptTo.map((r) => r.address) });
          callback();
        });
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as AddressInfo).port,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** RFC 5321 §4.2.1: 550 is final, 451 asks the client to try again later. */
function rcptVerdict(address: string, deferRate: number): Error | undefined {
  if (address.startsWith('nobody@')) return withCode(new Error('No such user here'), 550);
  if (Math.random() < deferRate) return withCode(new Error('Mailbox busy, try again later'), 451);
  return undefined;
}

function withCode(err: Error, responseCode: number): Error {
  return Object.assign(err, { responseCode });
}
