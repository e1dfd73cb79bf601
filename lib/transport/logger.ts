/**
 * Where a session or a pool logs: any object with these four methods, called pino-style
 * (`logger.info({ event, … }, 'text')`), so pino, bunyan-like loggers and `console` all fit.
 * Nothing logged carries a credential or a message body (AUTH payloads are redacted).
 */
export interface Logger {
  /** Detail nobody needs in production: the SMTP dialogue, line by line. */
  debug(fields: object, text: string): void;
  /** The life cycle: a session ready or closed, a pool's connections, a throttle released. */
  info(fields: object, text: string): void;
  /** A session or connection failed, or the server asked to slow down. */
  warn(fields: object, text: string): void;
  /** Something that cannot be recovered from by itself. */
  error(fields: object, text: string): void;
  /** pino's: when present and false for `debug`, the dialogue is not even collected. */
  isLevelEnabled?(level: string): boolean;
}

/** An error's stable code and text (ours never carry a secret), not the object with its stack and cause. */
export function describeError(error: unknown): { code?: unknown; error: string } {
  return {
    code: (error as { code?: unknown } | null)?.code,
    error: error instanceof Error ? error.message : String(error),
  };
}
