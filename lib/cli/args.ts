import { parseArgs, ParseArgsConfig } from 'node:util';

/** A mistake in the command line or its input: exit code 2, one line, no stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** The values `parse` returns for `O`, typed per option. */
export type Values<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>['values'];

/** Options every command that talks to a server takes. */
export const SERVER_OPTIONS = {
  server: { type: 'string', short: 's' },
  'auth-user': { type: 'string' },
  'auth-pass': { type: 'string' },
  starttls: { type: 'string' },
  ca: { type: 'string' },
  insecure: { type: 'boolean' },
  timeout: { type: 'string' },
  helo: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export const SERVER_HELP = `Server options:
  -s, --server URL          smtp://host[:port]  smtps://host[:port] (implicit TLS, 465)
                            smtp+starttls://host[:port] (STARTTLS required)  lmtp://host[:port]
                            lmtp+unix:///path/to/socket; user:password@ percent-encoded
  --auth-user USER          log in (password: --auth-pass, the URL, or RX_SMTP_PASSWORD)
  --auth-pass PASSWORD      prefer RX_SMTP_PASSWORD: a command line is visible to other users
  --starttls POLICY         required | opportunistic (default) | never
  --ca FILE                 trust this CA certificate (PEM)
  --insecure                do not verify the server's certificate
  --timeout SECONDS         connection and per-reply timeout
  --helo NAME               the name sent in EHLO/LHLO
  --json                    machine-readable output, one JSON object per line
  -h, --help                this help`;

/**
 * `util.parseArgs` in strict mode: an unknown flag, a missing value or a stray
 * argument is a `UsageError` naming it.
 */
export function parse<O extends Options>(argv: readonly string[], options: O): Values<O> {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    // Node's messages are one clear line already ("Unknown option '--bogus'"); drop its hints.
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
}

/** The one value of a flag that must be given. */
export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${flag} is required`);
  return value;
}

/** A whole number of at least `min` given as a flag. */
export function positiveInt(value: string | undefined, flag: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min)
    throw new UsageError(`--${flag} must be a whole number from ${min}, not ${JSON.stringify(value)}`);
  return n;
}
