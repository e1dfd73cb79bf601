import { loginMechanism } from '../../lib/auth/login';

const credentials = { user: 'tim', password: 'tanstaaf' };

describe('loginMechanism', () => {
  it('has no initial response by default and answers the two prompts in order', () => {
    const login = loginMechanism(credentials);
    expect(login.name).toBe('LOGIN');
    expect(login.initialResponse()).toBeNull();
    expect(login.respond(Buffer.from('Username:'))).toBe('tim');
    expect(login.respond(Buffer.from('Password:'))).toBe('tanstaaf');
    expect(() => login.finish()).not.toThrow();
  });

  it('does not read the prompts: the first is answered with the user, whatever it says', () => {
    const login = loginMechanism(credentials);
    expect(login.respond(Buffer.from('Password:'))).toBe('tim');
    expect(login.respond(Buffer.from('Benutzername:'))).toBe('tanstaaf');
  });

  it('sends the user as the initial response when asked to, then the password to the first prompt', () => {
    const login = loginMechanism(credentials, { initialResponse: true });
    expect(login.initialResponse()).toBe('tim');
    expect(login.respond(Buffer.from('Password:'))).toBe('tanstaaf');
  });

  it('cancels on a third prompt without showing the password', () => {
    const login = loginMechanism(credentials);
    login.respond(Buffer.from('Username:'));
    login.respond(Buffer.from('Password:'));
    let error: unknown;
    try {
      login.respond(Buffer.from('Password:'));
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION' });
    expect((error as Error).message).not.toContain('tanstaaf');
  });
});
