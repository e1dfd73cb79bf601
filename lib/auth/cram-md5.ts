import { createHmac } from 'crypto';
import { authFailure, type TextMechanism } from './mechanism';

/**
 * CRAM-MD5 (RFC 2195): `user SP hex(HMAC-MD5(password, challenge))`, as
 * smtplib's `auth_cram_md5`. No initial response; one challenge.
 *
 * @param credentials the user name and password (the HMAC key, as UTF-8).
 * @return a mechanism for one attempt. An empty challenge cancels the exchange:
 *   without the server's fresh challenge the answer could be replayed.
 *
 * @example
 * cramMd5Mechanism({ user: 'tim', password: 'tanstaaftanstaaf' })
 *   .respond(Buffer.from('<1896.697170952@postoffice.reston.mci.net>'))
 * // 'tim b913a602c7eda7a495b4e6e7334d3890'
 */
export function cramMd5Mechanism({ user, password }: { user: string; password: string }): TextMechanism {
  let answered = false;
  return {
    name: 'CRAM-MD5',
    initialResponse: () => null,
    respond(challenge) {
      if (answered) throw authFailure(334, 'CRAM-MD5', 'the server sent a second challenge');
      if (challenge.length === 0) throw authFailure(334, 'CRAM-MD5', 'the server sent an empty challenge');
      answered = true;
      return `${user} ${createHmac('md5', password).update(challenge).digest('hex')}`;
    },
    finish: () => undefined,
  };
}
