import * as net from 'node:net';
import * as tls from 'node:tls';
import { Observable } from 'rxjs';
import { SMTPTimeoutError } from '../errors';
import { SmtpConnection } from './connection';
import { socketFailure } from './tls-upgrade';
import { ConnectOptions, Endpoint, isIpLiteral, resolveEndpoint, SMTP_PORT, SMTP_SSL_PORT } from './options';

/** RFC 5321 §4.5.3.2 has no figure for the TCP connect; smtplib uses the socket default. */
export const DEFAULT_CONNECT_TIMEOUT = 60_000;

/**
 * Opens a connection when subscribed and emits it once the socket (and, for
 * implicit TLS, the handshake) is up; the greeting has not been read yet.
 *
 * ```
 * connect$(opts):  ----c--------------|   (completes when the socket closes after QUIT)
 *                  ----c-----X            (errors when the server drops the connection)
 * ```
 *
 * Unsubscribing destroys the socket. Certificates are verified by default;
 * SNI is sent only for host names, never for IP literals (RFC 6066 §3).
 *
 * @param options host, port or Unix path, implicit TLS, TLS options, source address.
 * @return a cold Observable of one `SmtpConnection`.
 */
export function connect$(
  options: ConnectOptions & { readonly lmtp?: boolean | undefined; readonly defaultPort?: number | undefined } = {},
): Observable<SmtpConnection> {
  return new Observable<SmtpConnection>((subscriber) => {
    const endpoint = resolveEndpoint(options, {
      port: options.defaultPort ?? (options.secure ? SMTP_SSL_PORT : SMTP_PORT),
      lmtp: options.lmtp,
    });
    const servername = 'host' in endpoint && !isIpLiteral(endpoint.host) ? endpoint.host : undefined;
    const socket = openSocket(endpoint, options, servername);
    const ms = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    const timer = setTimeout(() => {
      socket.destroy();
      subscriber.error(new SMTPTimeoutError('connect', ms));
    }, ms);
    let connection: SmtpConnection | undefined;
    const onError = (err: Error): void => {
      clearTimeout(timer);
      subscriber.error(socketFailure(err, `Could not connect to ${describe(endpoint)}`));
    };
    socket.once('error', onError);
    socket.once(options.secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      // SMTP writes small, dependent pieces (a body's tail, then its dot): Nagle plus the peer's
      // delayed ACK would hold each second piece ~40 ms. Writes are already batched per group.
      socket.setNoDelay(true);
      connection = new SmtpConnection(socket, {
        replyLimits: options.replyLimits,
        replyTimeout: options.replyTimeout,
        servername,
        host: 'host' in endpoint ? endpoint.host : undefined,
        peer: 'path' in endpoint ? endpoint.path : undefined,
      });
      const closed = connection.replies$.subscribe({
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      subscriber.add(closed);
      subscriber.next(connection);
    });
    return () => {
      clearTimeout(timer);
      // A graceful close under way (QUIT sent, our side ended) finishes on its own: end() has a fallback timer.
      if (!connection) socket.destroy();
      else if (!connection.closing) connection.destroy();
    };
  });
}

function openSocket(endpoint: Endpoint, options: ConnectOptions, servername: string | undefined): net.Socket {
  const local = {
    ...(options.sourceAddress?.host ? { localAddress: options.sourceAddress.host } : {}),
    ...(options.sourceAddress?.port ? { localPort: options.sourceAddress.port } : {}),
  };
  const target = 'path' in endpoint ? { path: endpoint.path } : { host: endpoint.host, port: endpoint.port, ...local };
  if (!options.secure) return net.connect(target);
  return tls.connect({ ...options.tls, ...target, ...(servername ? { servername } : {}) });
}

function describe(endpoint: Endpoint): string {
  return 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
}
