import * as os from 'node:os';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { ReplyLimits } from '../wire/reply';
import { SMTPInvalidArgumentError } from '../errors';

/** smtplib's `SMTP_PORT`: the SMTP port (RFC 5321 §4.5.4.2), used when none is given. */
export const SMTP_PORT = 25;
/** smtplib's `SMTP_SSL_PORT`: submission over implicit TLS (RFC 8314 §7.3), `SMTP_SSL`'s default. */
export const SMTP_SSL_PORT = 465;
/** smtplib's `LMTP_PORT`: the port LMTP servers are commonly set up on (RFC 2033 names none). */
export const LMTP_PORT = 2003;

/** Where and how to connect. */
export interface ConnectOptions {
  /** Host name or IP literal; for LMTP a path starting with `/` is a Unix socket. `"host:port"` is split. */
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  /** Unix socket path (takes precedence over host/port). */
  readonly path?: string | undefined;
  /** Implicit TLS from the first byte (SMTP_SSL, port 465). */
  readonly secure?: boolean | undefined;
  /** Node TLS options, used for implicit TLS and STARTTLS. Certificates are verified unless you say otherwise here. */
  readonly tls?: TlsConnectionOptions | undefined;
  /** Bind the local end of the socket. */
  readonly sourceAddress?: { readonly host?: string; readonly port?: number } | undefined;
  /** How long the TCP (and TLS) connection may take, in ms. */
  readonly connectTimeout?: number | undefined;
  /** Bounds on what the server may send. */
  readonly replyLimits?: Partial<ReplyLimits> | undefined;
  /** The deadline of a reply whose request names none (the greeting, fire-and-forget commands), in ms. */
  readonly replyTimeout?: number | undefined;
}

/** Where a socket goes: a TCP endpoint or a Unix socket path. */
export type Endpoint = { readonly host: string; readonly port: number } | { readonly path: string };

/**
 * Resolves smtplib's addressing rules: `"host:port"` is split at the last colon
 * when no port is given and the part after it is numeric (an IPv6 literal keeps its colons),
 * the default port depends on the protocol, and for LMTP a host starting with `/` is a Unix socket.
 */
export function resolveEndpoint(
  options: { host?: string | undefined; port?: number | undefined; path?: string | undefined },
  defaults: { port: number; lmtp?: boolean | undefined },
): Endpoint {
  if (options.path) return { path: options.path };
  let host = options.host || 'localhost';
  let port = options.port;
  if (defaults.lmtp && host.startsWith('/')) return { path: host };
  if (port === undefined || port === 0) {
    const colon = host.lastIndexOf(':');
    if (colon >= 0 && host.indexOf(':') === colon) {
      const tail = host.slice(colon + 1);
      if (!/^\d+$/.test(tail)) throw new SMTPInvalidArgumentError(`nonnumeric port: ${JSON.stringify(tail)}`);
      host = host.slice(0, colon);
      port = Number(tail);
    }
  }
  port = port || defaults.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new SMTPInvalidArgumentError(`Invalid port: ${port}`);
  }
  return { host, port };
}

/**
 * smtplib's default local host name: the FQDN when it contains a dot, else the
 * address literal of the local end of the connection (`[127.0.0.1]`, `[IPv6:…]`).
 */
export function defaultLocalHostname(localAddress: string | undefined): string {
  const fqdn = fullyQualifiedName();
  if (fqdn.includes('.')) return fqdn;
  if (!localAddress) return '[127.0.0.1]';
  return localAddress.includes(':') ? `[IPv6:${localAddress}]` : `[${localAddress}]`;
}

function fullyQualifiedName(): string {
  // Node has no getfqdn(); the kernel's host name is what smtplib's getfqdn() starts from.
  return os.hostname();
}

/** Whether `host` is an IP literal (SNI must not carry one: RFC 6066 §3). */
export function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
