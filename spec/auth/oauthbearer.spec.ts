import { oauthbearerMechanism } from '../../lib/auth/oauthbearer';

const token = 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==';

describe('oauthbearerMechanism', () => {
  it('sends the RFC 7628 §4.1 initial response byte for byte', () => {
    const bearer = oauthbearerMechanism({
      user: 'user@example.com',
      accessToken: token,
      host: 'server.example.com',
      port: 143,
    });
    expect(bearer.name).toBe('OAUTHBEARER');
    expect(Buffer.from(bearer.initialResponse()!).toString('base64')).toBe(
      'bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB',
    );
  });

  it('leaves host and port out when not given, and escapes the authzid', () => {
    expect(oauthbearerMechanism({ user: 'a,b=c', accessToken: 't' }).initialResponse()).toBe(
      'n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01',
    );
    expect(oauthbearerMechanism({ user: '', accessToken: 't', port: 587 }).initialResponse()).toBe(
      'n,,\x01port=587\x01auth=Bearer t\x01\x01',
    );
  });

  it('answers the error challenge with \\x01 (AQ==) and keeps the JSON (RFC 7628 §3.2.3)', () => {
    const error =
      '{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}';
    const bearer = oauthbearerMechanism({ user: 'user@example.com', accessToken: token });
    bearer.initialResponse();
    const response = bearer.respond(Buffer.from(error));
    expect(Buffer.from(response).toString('base64')).toBe('AQ==');
    expect(bearer.serverError).toBe(error);
  });

  it('refuses a bad port and control characters', () => {
    for (const port of [0, 65536, 1.5, NaN]) {
      expect(() => oauthbearerMechanism({ user: 'u', accessToken: 't', port })).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
      );
    }
    expect(() => oauthbearerMechanism({ user: 'u', accessToken: 't', host: 'h\x01' })).toThrow(/control character/);
  });
});
