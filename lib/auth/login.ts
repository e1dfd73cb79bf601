import { authFailure, type TextMechanism } from './mechanism';

/** Options of the LOGIN mechanism. */
export interface LoginMechanismOptions {
  /**
   * Send the user name as the initial response (`AUTH LOGIN <user>`), as smtplib
   * does with `initial_response_ok`. Default false: not every server accepts it.
   */
  initialResponse?: boolean;
}

/**
 * LOGIN (draft-murchison-sasl-login): answers the server's two prompts with the
 * user name, then the password. The prompts' text ("Username:", "Password:") is
 * not parsed, as in smtplib: servers word and localise it freely.
 *
 * @param credentials the user name and password.
 * @param options `initialResponse` to send the user name with AUTH.
 * @return a mechanism for one attempt; a third prompt cancels the exchange.
 *
 * @example
 * const login = loginMechanism({ user: 'tim', password: 'secret' });
 * login.respond(Buffer.from('Username:')) // 'tim'
 * login.respond(Buffer.from('Password:')) // 'secret'
 */
export function loginMechanism(
  { user, password }: { user: string; password: string },
  options: LoginMechanismOptions = {},
): TextMechanism {
  const answers = [user, password];
  let answered = 0;
  return {
    name: 'LOGIN',
    initialResponse() {
      if (!options.initialResponse) return null;
      answered = 1;
      return user;
    },
    respond() {
      const answer = answers[answered];
      if (answer === undefined) throw authFailure(334, 'LOGIN', 'the server prompted again after the password');
      answered += 1;
      return answer;
    },
    finish: () => undefined,
  };
}
