import { authFailure, type TextMechanism } from './mechanism';
import { singleMessage } from './single-message';

/** An OAuth 2.0 mechanism: keeps the server's error report for the exchange's error. */
export interface BearerMechanism extends TextMechanism {
  /**
   * The decoded challenge the server sent instead of accepting the token (a
   * JSON status: RFC 7628 §3.2.2, Google's XOAUTH2); undefined until then.
   */
  readonly serverError: string | undefined;
}

/**
 * XOAUTH2 and OAUTHBEARER share their flow: one message carrying the bearer
 * token; on failure the server sends its error as a challenge, the client
 * answers with a fixed dummy response, and the server ends with 5xx.
 *
 * @param name the mechanism name.
 * @param message the client's message with the token.
 * @param errorResponse what to answer to the error challenge.
 */
export function bearerMechanism(name: string, message: string, errorResponse: string): BearerMechanism {
  let serverError: string | undefined;
  const mechanism = singleMessage(name, message, (challenge) => {
    if (serverError !== undefined) throw authFailure(334, name, 'the server sent a challenge after its error');
    serverError = challenge.toString('utf8');
    return errorResponse;
  });
  return {
    ...mechanism,
    get serverError() {
      return serverError;
    },
  };
}
