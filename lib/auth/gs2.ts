/**
 * The GS2 header (RFC 5801 §4) that starts SCRAM and OAUTHBEARER messages. This
 * client never does channel binding, so the flag is always `n`.
 */

/**
 * Escapes a name for a `saslname` (RFC 5801 §4, RFC 5802 §5.1): `=` becomes
 * `=3D` and `,` becomes `=2C`.
 *
 * @example
 * escapeSaslName('a,b=c') // 'a=2Cb=3Dc'
 */
export function escapeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/**
 * The GS2 header: `n,,`, or `n,a=<authzid>,` when an authorization identity is given.
 *
 * @param authzid the identity to act as; empty or absent: none.
 */
export function gs2Header(authzid = ''): string {
  return authzid === '' ? 'n,,' : `n,a=${escapeSaslName(authzid)},`;
}
