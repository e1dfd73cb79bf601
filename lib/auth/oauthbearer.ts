import { SMTPInvalidArgumentError } from '../errors';
import { checkArgument } from '../wire/command';
import { bearerMechanism, type BearerMechanism } from './bearer';
import { gs2Header } from './gs2';
import type { BearerCredentials } from './xoauth2';

/** The credentials of OAUTHBEARER, with the optional server identification of RFC 7628 §3.1. */
export interface OAuthBearerCredentials extends BearerCredentials {
  /** The server's host name, as the client connected to it (the `host` key). */
  host?: string | undefined;
  /** The server's port (the `port` key). */
  port?: number | undefined;
}

/**
 * OAUTHBEARER (RFC 7628): initial response
 * `n,a=<user>,\x01host=<host>\x01port=<port>\x01auth=Bearer <token>\x01\x01`
 * (no channel binding; `host` and `port` only when given). On an error
 * challenge the mechanism answers `\x01` (RFC 7628 §3.2.3) and keeps the JSON
 * in `serverError`.
 *
 * @param credentials the user (the authorization identity), the token, and optionally host and port.
 * @return a mechanism for one attempt.
 * @throws SMTPInvalidArgumentError when a field holds a control character or the port is not one.
 *
 * @example
 * oauthbearerMechanism({ user: 'a@example.com', accessToken: 't', host: 'smtp.example.com', port: 587 })
 *   .initialResponse()
 * // 'n,a=a@example.com,\x01host=smtp.example.com\x01port=587\x01auth=Bearer t\x01\x01'
 */
export function oauthbearerMechanism({ user, accessToken, host, port }: OAuthBearerCredentials): BearerMechanism {
  checkArgument(user, 'OAUTHBEARER user name');
  checkArgument(accessToken, 'OAUTHBEARER access token');
  const keys = [];
  if (host !== undefined) keys.push(`host=${checkArgument(host, 'OAUTHBEARER host')}`);
  if (port !== undefined) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new SMTPInvalidArgumentError(`OAUTHBEARER: not a port number: ${String(port)}`);
    }
    keys.push(`port=${port}`);
  }
  keys.push(`auth=Bearer ${accessToken}`);
  const message = `${gs2Header(user)}\x01${keys.join('\x01')}\x01\x01`;
  return bearerMechanism('OAUTHBEARER', message, '\x01');
}
