import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { Observable, OperatorFunction, concatMap, map } from 'rxjs';
import { SmtpConnection } from '../transport/connection';
import { defaultLocalHostname } from '../transport/options';
import { SMTPInvalidArgumentError } from '../errors';
import { Command } from '../wire/command';
import { Reply } from '../wire/reply';

/**
 * Per-step reply timeouts in ms. Defaults are RFC 5321 §4.5.3.2's minimums;
 * steps the RFC does not name (EHLO, STARTTLS, AUTH, VRFY, …) use `command`.
 */
export interface Timeouts {
  readonly greeting: number;
  readonly command: number;
  readonly mail: number;
  readonly rcpt: number;
  readonly data: number;
  /** Each write of the body (the RFC's "data block"). */
  readonly dataBlock: number;
  /** The reply to the final dot (or to BDAT LAST). */
  readonly dataEnd: number;
}

const MINUTE = 60_000;
/** The per-step timeouts, in ms: RFC 5321 §4.5.3.2's figures (its 5 minutes for the commands it does not name). */
export const DEFAULT_TIMEOUTS: Timeouts = {
  greeting: 5 * MINUTE,
  command: 5 * MINUTE,
  mail: 5 * MINUTE,
  rcpt: 5 * MINUTE,
  data: 2 * MINUTE,
  dataBlock: 3 * MINUTE,
  dataEnd: 10 * MINUTE,
};

/**
 * Resolves per-step timeouts: one `timeout` (smtplib's) overrides every step; `timeouts` override
 * single steps. Every value must be a positive, finite number of ms; anything else is
 * `SMTPInvalidArgumentError` (smtplib raises ValueError for 0), raised before any I/O.
 *
 * @param timeout smtplib's one timeout, in ms.
 * @param timeouts per-step timeouts, in ms.
 * @return a timeout for every step.
 */
export function resolveTimeouts(timeout?: number, timeouts: Partial<Timeouts> = {}): Timeouts {
  checkTimeout('timeout', timeout);
  for (const [step, ms] of Object.entries(timeouts)) checkTimeout(`timeouts.${step}`, ms);
  const base: Timeouts =
    timeout === undefined
      ? DEFAULT_TIMEOUTS
      : (Object.fromEntries(Object.keys(DEFAULT_TIMEOUTS).map((k) => [k, timeout])) as unknown as Timeouts);
  return { ...base, ...timeouts };
}

/**
 * Node counts in ms, smtplib in seconds: `timeout: 0` (or a negative, NaN or infinite value) would
 * fire at once or never, so it is refused rather than guessed at.
 */
function checkTimeout(name: string, ms: number | undefined): void {
  if (ms === undefined || (Number.isFinite(ms) && ms > 0)) return;
  throw new SMTPInvalidArgumentError(`${name} must be a positive, finite number of milliseconds, got ${ms}`);
}

/** Options that shape a session, beyond where to connect. */
export interface SessionOptions {
  /** The name sent in EHLO/HELO/LHLO; default: smtplib's rule (FQDN with a dot, else `[address]`). */
  readonly localHostname?: string | undefined;
  /** LMTP (RFC 2033): LHLO instead of EHLO, one reply per recipient after the body. */
  readonly lmtp?: boolean | undefined;
  /**
   * One timeout for every step, in **milliseconds** (smtplib's `timeout`, which counts seconds:
   * `timeout: 30` waits 30 ms). 0, negative, NaN or infinite values are `SMTPInvalidArgumentError`.
   */
  readonly timeout?: number | undefined;
  /** Per-step timeouts, in milliseconds; each positive and finite, as `timeout`. */
  readonly timeouts?: Partial<Timeouts> | undefined;
  /** TLS options for STARTTLS. */
  readonly tls?: TlsConnectionOptions | undefined;
}

/**
 * What is known about one SMTP session: an immutable snapshot that each step
 * operator replaces with a new one. Attribute names follow smtplib's.
 */
export interface Session {
  readonly connection: SmtpConnection;
  readonly lmtp: boolean;
  readonly localHostname: string;
  readonly timeouts: Timeouts;
  readonly tls: TlsConnectionOptions;
  readonly greeting: Reply | null;
  readonly heloResp: string | null;
  readonly ehloResp: string | null;
  readonly doesEsmtp: boolean;
  /** EHLO keywords, lower-case, parsed as smtplib does. */
  readonly esmtpFeatures: Readonly<Record<string, string>>;
  /** The mechanism that authenticated the session, if any. */
  readonly authenticatedAs: string | null;
}

/** A step's outcome: the new session snapshot and the reply that decided it. */
export interface Step {
  readonly session: Session;
  readonly reply: Reply;
}

/** A fresh session on a connection whose greeting has not been read yet. */
export function newSession(connection: SmtpConnection, options: SessionOptions = {}): Session {
  return {
    connection,
    lmtp: options.lmtp ?? false,
    localHostname: options.localHostname ?? defaultLocalHostname(connection.localAddress),
    timeouts: resolveTimeouts(options.timeout, options.timeouts),
    tls: options.tls ?? {},
    greeting: null,
    ...forgetCapabilities(),
    authenticatedAs: null,
  };
}

/** What EHLO taught us, cleared (after STARTTLS, RFC 3207 §4.2, and after QUIT). */
export function forgetCapabilities(): Pick<Session, 'heloResp' | 'ehloResp' | 'doesEsmtp' | 'esmtpFeatures'> {
  return { heloResp: null, ehloResp: null, doesEsmtp: false, esmtpFeatures: {} };
}

/** smtplib's `has_extn`: case-insensitive lookup of an EHLO keyword. */
export function hasExtension(session: Session, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(session.esmtpFeatures, name.toLowerCase());
}

/** Sends one command and emits its reply, under the step's timeout. */
export function exchange$(session: Session, cmd: Command, timeout: keyof Timeouts = 'command'): Observable<Reply> {
  return session.connection.request$(cmd, { step: cmd.verb.toLowerCase(), timeout: session.timeouts[timeout] });
}

/** Lifts a step function into an operator on a stream of sessions. */
export function stepOperator<A extends unknown[]>(
  step$: (session: Session, ...args: A) => Observable<Step>,
  ...args: A
): OperatorFunction<Session, Session> {
  return concatMap((session: Session) => step$(session, ...args).pipe(map((s) => s.session)));
}
