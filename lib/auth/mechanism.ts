/**
 * What the SMTP AUTH exchange (RFC 4954) drives: a SASL mechanism (RFC 4422)
 * as pure, I/O-free code. The exchange base64-encodes what the mechanism
 * returns (strings as UTF-8), base64-decodes each 334 challenge before handing
 * it over, and owns the wire; the mechanism owns the SASL state.
 */
import { SMTPAuthenticationError, SMTPInvalidArgumentError } from '../errors';

/** One authentication attempt with one mechanism; create a fresh one per attempt. */
export interface SaslMechanism {
  /** The SASL name sent after AUTH: `'PLAIN'`, `'SCRAM-SHA-256'`, … */
  readonly name: string;
  /**
   * The initial response (raw bytes or a string, before base64); null: the mechanism has none.
   * Called at most once, and only when the exchange sends an initial response
   * (`AUTH <name> <response>`). Otherwise the exchange sends `AUTH <name>` and
   * the mechanism answers the first, empty, 334 challenge from `respond()` instead
   * (RFC 4954 §4).
   */
  initialResponse(): Uint8Array | string | null;
  /** The answer to one decoded 334 challenge; throw to cancel (the exchange then sends '*'). */
  respond(challenge: Buffer): Uint8Array | string;
  /**
   * Called on 235: throws SMTPAuthenticationError when the mechanism could not verify the server (SCRAM without a
   * verified server signature).
   */
  finish(): void;
}

/** A mechanism whose responses are all text (every built-in one). */
export interface TextMechanism extends SaslMechanism {
  initialResponse(): string | null;
  respond(challenge: Buffer): string;
}

/** Builds a mechanism for one attempt from a user name and a password. */
export type MechanismFactory = (credentials: { user: string; password: string }) => SaslMechanism;

/**
 * smtplib's authobject: called with null for the initial response (null back
 * means none), then with each decoded challenge; the answer is sent as UTF-8.
 */
export type AuthObject = (challenge: Buffer | null) => string | null;

// The built-in authobjects keep state (LOGIN counts its prompts). An exchange
// that is subscribed again (retry) must not inherit the previous attempt's
// state, so each remembers how to make a fresh copy of itself.
const freshCopies = new WeakMap<AuthObject, () => AuthObject>();

/**
 * Wraps a mechanism as an smtplib authobject, so `auth$('PLAIN', authPlain(u, p))`
 * reads like smtplib's `auth('PLAIN', smtp.auth_plain)`.
 *
 * @param create makes the mechanism; called again for each exchange that uses the authobject.
 * @return the authobject.
 */
export function toAuthObject(create: () => TextMechanism): AuthObject {
  const mechanism = create();
  const authobject: AuthObject = (challenge) =>
    challenge === null ? mechanism.initialResponse() : mechanism.respond(challenge);
  freshCopies.set(authobject, () => toAuthObject(create));
  return authobject;
}

// RFC 4422 §3.1: 1 to 20 characters from A-Z, 0-9, '-' and '_'.
const MECHANISM_NAME = /^[A-Z0-9_-]{1,20}$/;

/**
 * Adapts an smtplib authobject to the interface the exchange drives.
 *
 * @param name the mechanism name; upper-cased as smtplib does.
 * @param authobject called with null for the initial response, then with each challenge.
 * @return a mechanism for one attempt; it cannot verify the server, so `finish()` accepts any 235.
 * @throws SMTPInvalidArgumentError when `name` is not a SASL mechanism name.
 *
 * @example
 * fromAuthObject('plain', authPlain('user', 'secret')).name // 'PLAIN'
 */
export function fromAuthObject(name: string, authobject: AuthObject): SaslMechanism {
  const upper = name.toUpperCase();
  if (!MECHANISM_NAME.test(upper)) {
    throw new SMTPInvalidArgumentError(`Not a SASL mechanism name: ${JSON.stringify(name)}`);
  }
  const answer = freshCopies.get(authobject)?.() ?? authobject;
  return {
    name: upper,
    initialResponse: () => answer(null),
    respond(challenge) {
      const response = answer(challenge);
      if (response === null) throw authFailure(334, upper, 'the authobject gave no answer to the challenge');
      return response;
    },
    finish: () => undefined,
  };
}

/**
 * The error a mechanism throws to cancel the exchange or to reject a 235.
 *
 * @param code the code of the reply the mechanism could not accept (334 or 235).
 * @param mechanism the mechanism name.
 * @param detail why; never a secret.
 */
export function authFailure(code: 235 | 334, mechanism: string, detail: string): SMTPAuthenticationError {
  return new SMTPAuthenticationError(code, `${mechanism}: ${detail}`);
}

/** Server text made safe for an error message: no control characters, bounded. */
export function printable(text: string, max = 200): string {
  const clean = text.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
