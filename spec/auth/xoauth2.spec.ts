import { xoauth2Mechanism } from '../../lib/auth/xoauth2';

const googleError = '{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}';

describe('xoauth2Mechanism', () => {
  const credentials = { user: 'someuser@example.com', accessToken: 'ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg' };

  it('sends user=…\\x01auth=Bearer …\\x01\\x01 as the initial response (Google example)', () => {
    const xoauth2 = xoauth2Mechanism(credentials);
    expect(xoauth2.name).toBe('XOAUTH2');
    expect(Buffer.from(xoauth2.initialResponse()!).toString('base64')).toBe(
      'dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==',
    );
    expect(xoauth2.serverError).toBeUndefined();
  });

  it('answers the error challenge with an empty response and keeps the JSON', () => {
    const xoauth2 = xoauth2Mechanism(credentials);
    xoauth2.initialResponse();
    expect(xoauth2.respond(Buffer.from(googleError))).toBe('');
    expect(xoauth2.serverError).toBe(googleError);
  });

  it('sends the token in answer to the empty 334 when there was no initial response', () => {
    const xoauth2 = xoauth2Mechanism(credentials);
    expect(xoauth2.respond(Buffer.alloc(0))).toBe(
      `user=${credentials.user}\x01auth=Bearer ${credentials.accessToken}\x01\x01`,
    );
    expect(xoauth2.respond(Buffer.from(googleError))).toBe('');
  });

  it('cancels on a challenge after the error', () => {
    const xoauth2 = xoauth2Mechanism(credentials);
    xoauth2.initialResponse();
    xoauth2.respond(Buffer.from(googleError));
    expect(() => xoauth2.respond(Buffer.from(googleError))).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_AUTHENTICATION' }),
    );
  });

  it('refuses a control character in a field without showing the token', () => {
    expect(() => xoauth2Mechanism({ user: 'a\x01b', accessToken: 't' })).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
    );
    expect(() => xoauth2Mechanism({ user: 'a', accessToken: 'SECRETVALUE\x01' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('SECRETVALUE') }),
    );
  });
});
