import { UsageError } from './args';

/** The exit codes of `rx-smtp` (issue 13): part of its interface, scripts test them. */
export const EXIT = {
  /** Everything accepted. */
  ok: 0,
  /** Some recipients or messages refused, or failed. */
  refused: 1,
  /** A usage error: bad flags or input. */
  usage: 2,
  /** Could not connect, or TLS or AUTH failed. */
  connect: 3,
  /** Some message possibly delivered (the connection failed after the final dot). */
  possiblyDelivered: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Errors that mean the session never became ready to send: matched on `code` (lib/errors.ts). */
const SESSION_CODES = new Set([
  'ERR_SMTP_CONNECT',
  'ERR_SMTP_SERVER_DISCONNECTED',
  'ERR_SMTP_TIMEOUT',
  'ERR_SMTP_TLS_CERTIFICATE',
  'ERR_SMTP_AUTHENTICATION',
  'ERR_SMTP_INSECURE_AUTH',
  'ERR_SMTP_NOT_SUPPORTED',
  'ERR_SMTP_HELO',
  'ERR_SMTP_PROTOCOL',
  'ERR_SMTP_REPLY_LIMIT',
  'ECONNREFUSED',
  'ENOTFOUND',
  'ENOENT',
]);

/** The exit code for an error, knowing whether the session was ready when it happened. */
export function exitCodeOf(err: unknown, sessionReady: boolean): ExitCode {
  if (err instanceof UsageError) return EXIT.usage;
  const code = codeOf(err);
  if (code === 'ERR_SMTP_POSSIBLY_DELIVERED') return EXIT.possiblyDelivered;
  if (code === 'ERR_SMTP_INVALID_ARGUMENT') return EXIT.usage;
  if (!sessionReady && code !== undefined && SESSION_CODES.has(code)) return EXIT.connect;
  return EXIT.refused;
}

/** One line for a person: the message, and the code to search for. No stack. */
export function describe(err: unknown): string {
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const line = message.split('\n').join(' ');
  return code && !(err instanceof UsageError) ? `${line} (${code})` : line;
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
