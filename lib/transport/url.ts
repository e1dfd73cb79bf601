import { SMTPInvalidArgumentError } from '../errors';
import { LMTP_PORT, SMTP_PORT, SMTP_SSL_PORT } from './options';

/** What a server URL says about where and how to connect: a fragment of a `SessionConfig`. */
export interface ServerUrl {
  readonly host?: string;
  readonly port?: number;
  /** Unix socket path (`lmtp+unix:///path`). */
  readonly path?: string;
  /** Implicit TLS from the first byte (`smtps://`). */
  readonly secure?: boolean;
  /** `required` for `smtp+starttls://`; otherwise left to the caller's default. */
  readonly starttls?: 'required';
  readonly lmtp?: boolean;
  /** `user:password@`, percent-decoded. */
  readonly auth?: { readonly user: string; readonly password: string };
}

/** The schemes we know, and what each one implies. */
const SCHEMES: Readonly<Record<string, { readonly port: number } & Omit<ServerUrl, 'host' | 'port' | 'auth'>>> = {
  'smtp:': { port: SMTP_PORT },
  'smtps:': { port: SMTP_SSL_PORT, secure: true },
  'smtp+starttls:': { port: SMTP_PORT, starttls: 'required' },
  'lmtp:': { port: LMTP_PORT, lmtp: true },
  'lmtp+unix:': { port: 0, lmtp: true },
};

/**
 * Parses a server URL: `smtp://host[:port]`, `smtps://host[:port]` (implicit TLS, 465),
 * `smtp+starttls://host[:port]` (STARTTLS required), `lmtp://host[:port]` (2003),
 * `lmtp+unix:///path/to/socket`, each with an optional `user:password@` (percent-decoded).
 * IPv6 literals go in brackets: `smtp://[::1]:2525`. Pure: no I/O.
 *
 * @example
 * parseServerUrl('smtps://me%40example.com:s3cret@mail.example.com')
 * // { host: 'mail.example.com', port: 465, secure: true, auth: { user: 'me@example.com', password: 's3cret' } }
 * @param url the URL.
 * @return the `SessionConfig` fields it sets.
 * @throws SMTPInvalidArgumentError for anything else; the message never carries the password.
 */
export function parseServerUrl(url: string): ServerUrl {
  const parsed = parseWhatwg(url);
  const scheme = SCHEMES[parsed.protocol];
  if (!scheme) throw invalid(url, `unknown scheme ${JSON.stringify(parsed.protocol.slice(0, -1))}`);
  if (parsed.search || parsed.hash) throw invalid(url, 'no query or fragment is allowed');
  const { port: defaultPort, ...implied } = scheme;
  const auth = credentials(parsed, url);
  if (parsed.protocol === 'lmtp+unix:') {
    if (parsed.host || parsed.port) throw invalid(url, 'a Unix socket URL has no host: lmtp+unix:///path/to/socket');
    const path = decode(parsed.pathname, url);
    if (path.length < 2) throw invalid(url, 'the socket path is missing');
    return { ...implied, path, ...auth };
  }
  if (parsed.pathname !== '' && parsed.pathname !== '/') throw invalid(url, 'no path is allowed');
  // WHATWG keeps the brackets of an IPv6 literal in `hostname`; sockets want the bare address.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw invalid(url, 'the host is missing');
  // Port 0 would mean "any" to a listener; to a client it is no port at all.
  if (parsed.port === '0') throw invalid(url, 'port 0');
  return { host, port: parsed.port ? Number(parsed.port) : defaultPort, ...implied, ...auth };
}

function parseWhatwg(url: string): URL {
  try {
    return new URL(url);
  } catch {
    // Node's TypeError carries the input, password included: say it again without it.
    throw invalid(url, 'not a URL (smtp://host[:port], smtps://, smtp+starttls://, lmtp://, lmtp+unix:///path)');
  }
}

function credentials(parsed: URL, url: string): Pick<ServerUrl, 'auth'> {
  if (!parsed.username && !parsed.password) return {};
  if (!parsed.username) throw invalid(url, 'a password without a user name');
  return { auth: { user: decode(parsed.username, url), password: decode(parsed.password, url) } };
}

function decode(text: string, url: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalid(url, 'bad percent-encoding');
  }
}

function invalid(url: string, reason: string): SMTPInvalidArgumentError {
  return new SMTPInvalidArgumentError(`Invalid server URL ${JSON.stringify(redact(url))}: ${reason}`);
}

/**
 * The URL as it may be shown: whatever stands between `scheme://` and the last `@` may be a
 * secret (a password with an unencoded `/` or `@` included), so all of it goes.
 */
export function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`);
}
