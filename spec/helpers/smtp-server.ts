import { AddressInfo } from 'node:net';
import { SMTPServer, SMTPServerOptions } from 'smtp-server';
import { server as cert } from './certs';

/** A message as the real server received it. */
export interface Received {
  readonly from: string | false;
  readonly to: readonly string[];
  readonly body: Buffer;
  readonly secure: boolean;
}

export interface RealServer {
  readonly port: number;
  readonly messages: Received[];
  close(): Promise<void>;
}

/**
 * The npm `smtp-server` on 127.0.0.1 (ephemeral port), with the test certificate
 * for STARTTLS; `options` override anything (hide extensions, LMTP, handlers).
 */
export async function startSmtpServer(options: SMTPServerOptions = {}): Promise<RealServer> {
  const messages: Received[] = [];
  const server = new SMTPServer({
    ...cert,
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom && session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          body: Buffer.concat(chunks),
          secure: session.secure,
        });
        callback();
      });
    },
    ...options,
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
