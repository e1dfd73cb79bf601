import { checkArgument } from '../wire/command';
import { bearerMechanism, type BearerMechanism } from './bearer';

/** The credentials of the OAuth 2.0 mechanisms. */
export interface BearerCredentials {
  user: string;
  /** The OAuth 2.0 access token (a bearer token, RFC 6750). */
  accessToken: string;
}

/**
 * XOAUTH2 (Google, Microsoft): initial response
 * `user=<user>\x01auth=Bearer <token>\x01\x01`. When the token is refused the
 * server sends a base64 JSON error as a 334 challenge; the mechanism answers
 * with an empty response, as Google documents, and keeps the JSON in `serverError`.
 *
 * @param credentials the user and the access token.
 * @return a mechanism for one attempt.
 * @throws SMTPInvalidArgumentError when a field holds a control character.
 *
 * @example
 * xoauth2Mechanism({ user: 'a@example.com', accessToken: 'ya29.x' }).initialResponse()
 * // 'user=a@example.com\x01auth=Bearer ya29.x\x01\x01'
 */
export function xoauth2Mechanism({ user, accessToken }: BearerCredentials): BearerMechanism {
  checkArgument(user, 'XOAUTH2 user name');
  checkArgument(accessToken, 'XOAUTH2 access token');
  return bearerMechanism('XOAUTH2', `user=${user}\x01auth=Bearer ${accessToken}\x01\x01`, '');
}
