import type { TextMechanism } from './mechanism';

/**
 * A mechanism that sends one message, either as the initial response or as the
 * answer to the first (empty) 334 challenge, and hands any later challenge to
 * `afterMessage` (PLAIN, XOAUTH2, OAUTHBEARER).
 *
 * @param name the mechanism name.
 * @param message the client's only message.
 * @param afterMessage answers (or rejects, by throwing) a challenge that follows the message.
 * @return the mechanism.
 */
export function singleMessage(
  name: string,
  message: string,
  afterMessage: (challenge: Buffer) => string,
): TextMechanism {
  let sent = false;
  const send = (): string => {
    sent = true;
    return message;
  };
  return {
    name,
    initialResponse: send,
    // RFC 4954 §4: without an initial response the server asks for it with an empty 334.
    respond: (challenge) => (sent ? afterMessage(challenge) : send()),
    finish: () => undefined,
  };
}
