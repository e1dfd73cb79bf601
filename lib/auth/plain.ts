import { SMTPInvalidArgumentError } from '../errors';
import { authFailure, type TextMechanism } from './mechanism';
import { singleMessage } from './single-message';

/**
 * PLAIN (RFC 4616): `\0user\0password`, as smtplib's `auth_plain` (no
 * authorization identity). The fields go as UTF-8 without SASLprep: RFC 4616 §2
 * leaves preparation to the server.
 *
 * @param credentials the user name and password.
 * @return a mechanism for one attempt.
 * @throws SMTPInvalidArgumentError when a field holds NUL, the field separator.
 *
 * @example
 * plainMechanism({ user: 'tim', password: 'secret' }).initialResponse() // '\0tim\0secret'
 */
export function plainMechanism({ user, password }: { user: string; password: string }): TextMechanism {
  for (const [what, value] of [
    ['user name', user],
    ['password', password],
  ] as const) {
    if (value.includes('\0')) throw new SMTPInvalidArgumentError(`PLAIN: the ${what} contains a NUL character`);
  }
  return singleMessage('PLAIN', `\0${user}\0${password}`, () => {
    throw authFailure(334, 'PLAIN', 'the server sent a challenge after the credentials');
  });
}
