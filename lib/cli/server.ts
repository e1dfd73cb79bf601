import * as fs from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { SessionConfig, StartTlsPolicy, parseServerUrl } from '../index';
import { UsageError, positiveInt, required } from './args';

/** The values of `SERVER_OPTIONS` as parsed. */
export interface ServerFlags {
  readonly server?: string;
  readonly 'auth-user'?: string;
  readonly 'auth-pass'?: string;
  readonly starttls?: string;
  readonly ca?: string;
  readonly insecure?: boolean;
  readonly timeout?: string;
  readonly helo?: string;
}

const POLICIES: readonly StartTlsPolicy[] = ['required', 'opportunistic', 'never'];

/**
 * The session config the server flags describe. The URL is parsed here so that a bad one is a
 * usage error (exit 2) before anything connects; flags beside it win over what it says.
 */
export function sessionConfig(flags: ServerFlags, env: NodeJS.ProcessEnv): SessionConfig {
  const url = required(flags.server, 'server');
  let fromUrl;
  try {
    fromUrl = parseServerUrl(url);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const timeoutSeconds = positiveInt(flags.timeout, 'timeout', 0);
  return {
    url,
    starttls: policy(flags.starttls),
    auth: credentials(flags, fromUrl.auth, env),
    tls: tlsOptions(flags),
    localHostname: flags.helo,
    timeout: timeoutSeconds ? timeoutSeconds * 1000 : undefined,
    connectTimeout: timeoutSeconds ? timeoutSeconds * 1000 : undefined,
  };
}

function policy(value: string | undefined): StartTlsPolicy | undefined {
  if (value === undefined) return undefined;
  if (!(POLICIES as readonly string[]).includes(value))
    throw new UsageError(`--starttls must be one of ${POLICIES.join(', ')}`);
  return value as StartTlsPolicy;
}

/** The user from --auth-user or the URL; the password from --auth-pass, the URL, or RX_SMTP_PASSWORD. */
function credentials(
  flags: ServerFlags,
  fromUrl: { user: string; password: string } | undefined,
  env: NodeJS.ProcessEnv,
): SessionConfig['auth'] {
  const user = flags['auth-user'] ?? fromUrl?.user;
  if (user === undefined) return undefined;
  const password = flags['auth-pass'] ?? (fromUrl?.password || env.RX_SMTP_PASSWORD);
  if (!password)
    throw new UsageError(`no password for ${JSON.stringify(user)}: give --auth-pass or set RX_SMTP_PASSWORD`);
  return { user, password };
}

function tlsOptions(flags: ServerFlags): ConnectionOptions | undefined {
  if (!flags.ca && !flags.insecure) return undefined;
  return {
    ...(flags.ca ? { ca: readFile(flags.ca, 'ca') } : {}),
    ...(flags.insecure ? { rejectUnauthorized: false } : {}),
  };
}

/** A file named by a flag; `-` is standard input. Unreadable is a usage error. */
export function readFile(path: string, flag: string): Buffer {
  try {
    return fs.readFileSync(path === '-' ? 0 : path);
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
