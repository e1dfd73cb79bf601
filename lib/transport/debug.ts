/** One event on a connection's `debug$` stream. Secrets are already redacted. */
export interface DebugEvent {
  /** `send`: bytes we wrote; `receive`: a reply line; `info`: connection life cycle. */
  readonly direction: 'send' | 'receive' | 'info';
  readonly text: string;
  /** `Date.now()` when it happened. */
  readonly time: number;
}

/**
 * Hides every secret (an AUTH response we sent, as base64 or decoded) that a server echoes
 * back in its reply, so it reaches neither `debug$` nor an error message.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('****');
  return out;
}

/** Formats an event the way smtplib's debug output reads; level 2 adds a timestamp. */
export function formatDebugEvent(event: DebugEvent, level: 1 | 2): string {
  const prefix = { send: 'send:', receive: 'reply:', info: 'info:' }[event.direction];
  const line = `${prefix} ${JSON.stringify(event.text)}`;
  return level === 2 ? `${new Date(event.time).toISOString()} ${line}` : line;
}
