/**
 * The SASL mechanisms, pure and I/O-free, for the AUTH exchange to drive: a
 * registry of the password mechanisms, the order to try them in, and smtplib's
 * built-in authobjects.
 */
import { cramMd5Mechanism } from './cram-md5';
import { loginMechanism } from './login';
import { toAuthObject, type AuthObject, type MechanismFactory } from './mechanism';
import { plainMechanism } from './plain';
import { scramSha1Mechanism, scramSha256Mechanism } from './scram';

export {
  fromAuthObject,
  type AuthObject,
  type MechanismFactory,
  type SaslMechanism,
  type TextMechanism,
} from './mechanism';
export type { BearerMechanism } from './bearer';
export { cramMd5Mechanism } from './cram-md5';
export { loginMechanism, type LoginMechanismOptions } from './login';
export { oauthbearerMechanism, type OAuthBearerCredentials } from './oauthbearer';
export { plainMechanism } from './plain';
export { scramSha1Mechanism, scramSha256Mechanism, type ScramOptions } from './scram';
export { xoauth2Mechanism, type BearerCredentials } from './xoauth2';

/** The mechanisms that authenticate with a user name and a password, by SASL name. */
export const MECHANISMS: Readonly<Record<string, MechanismFactory>> = Object.freeze({
  'SCRAM-SHA-256': scramSha256Mechanism,
  'SCRAM-SHA-1': scramSha1Mechanism,
  'CRAM-MD5': cramMd5Mechanism,
  PLAIN: plainMechanism,
  LOGIN: loginMechanism,
});

/**
 * The order `login$` tries the password mechanisms in: SCRAM first (it never
 * reveals the password and proves the server knows it), then smtplib's order.
 */
export const preferenceOrder: readonly string[] = Object.freeze([
  'SCRAM-SHA-256',
  'SCRAM-SHA-1',
  'CRAM-MD5',
  'PLAIN',
  'LOGIN',
]);

/**
 * The mechanisms to try, as smtplib's `login()` picks them: those of `preferred`
 * that the server offers and that have a factory in `MECHANISMS`, in the
 * preferred order. Names compare case-insensitively and come back upper-cased.
 *
 * @param offered the mechanisms of the server's AUTH capability.
 * @param preferred the caller's order; default `preferenceOrder`.
 * @return the names to try, in order; empty when nothing fits.
 *
 * @example
 * pickMechanisms(['login', 'plain', 'xoauth2']) // ['PLAIN', 'LOGIN']
 */
export function pickMechanisms(offered: readonly string[], preferred: readonly string[] = preferenceOrder): string[] {
  const offers = new Set(offered.map((name) => name.toUpperCase()));
  const wanted = new Set(preferred.map((name) => name.toUpperCase()));
  return [...wanted].filter((name) => offers.has(name) && Object.hasOwn(MECHANISMS, name));
}

/** smtplib's `auth_plain` as an authobject: `auth$('PLAIN', authPlain(user, password))`. */
export function authPlain(user: string, password: string): AuthObject {
  return toAuthObject(() => plainMechanism({ user, password }));
}

/**
 * smtplib's `auth_login` as an authobject: the user name as the initial response
 * (when the exchange sends one) or to the first prompt, the password to the next.
 */
export function authLogin(user: string, password: string): AuthObject {
  return toAuthObject(() => loginMechanism({ user, password }, { initialResponse: true }));
}

/** smtplib's `auth_cram_md5` as an authobject: no initial response, one challenge. */
export function authCramMd5(user: string, password: string): AuthObject {
  return toAuthObject(() => cramMd5Mechanism({ user, password }));
}
