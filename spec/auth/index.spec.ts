import {
  authCramMd5,
  authLogin,
  authPlain,
  fromAuthObject,
  MECHANISMS,
  pickMechanisms,
  preferenceOrder,
} from '../../lib/auth';

const credentials = { user: 'user', password: 'pencil' };

describe('MECHANISMS', () => {
  it('builds every password mechanism in preferenceOrder under its own name', () => {
    expect(Object.keys(MECHANISMS).sort()).toEqual([...preferenceOrder].sort());
    for (const name of preferenceOrder) expect(MECHANISMS[name]!(credentials).name).toBe(name);
  });

  it('sends no initial response for LOGIN by default', () => {
    expect(MECHANISMS.LOGIN!(credentials).initialResponse()).toBeNull();
  });
});

describe('pickMechanisms', () => {
  it('keeps the preferred order, whatever the server order, case-insensitively', () => {
    expect(pickMechanisms(['login', 'PLAIN', 'Cram-MD5', 'SCRAM-SHA-1', 'scram-sha-256'])).toEqual(preferenceOrder);
    expect(pickMechanisms(['LOGIN', 'PLAIN', 'XOAUTH2'])).toEqual(['PLAIN', 'LOGIN']);
  });

  it('follows the caller order and drops what has no password factory or is not offered', () => {
    expect(pickMechanisms(['PLAIN', 'LOGIN', 'XOAUTH2'], ['login', 'xoauth2', 'plain', 'LOGIN', 'GSSAPI'])).toEqual([
      'LOGIN',
      'PLAIN',
    ]);
  });

  it('returns nothing when nothing fits', () => {
    expect(pickMechanisms([])).toEqual([]);
    expect(pickMechanisms(['GSSAPI', 'NTLM'])).toEqual([]);
    expect(pickMechanisms(['CONSTRUCTOR', 'TOSTRING'], ['constructor', 'toString'])).toEqual([]);
  });
});

describe('smtplib authobjects', () => {
  it('authPlain answers like smtplib auth_plain', () => {
    const authobject = authPlain('Mr.A@somewhere.com', 'somepassword');
    expect(Buffer.from(authobject(null)!).toString('base64')).toBe('AE1yLkFAc29tZXdoZXJlLmNvbQBzb21lcGFzc3dvcmQ=');
  });

  it('authLogin gives the user first (initial response or first prompt), then the password', () => {
    const withInitial = authLogin('tim', 'pw');
    expect([withInitial(null), withInitial(Buffer.from('Password:'))]).toEqual(['tim', 'pw']);
    const withoutInitial = authLogin('tim', 'pw');
    expect([withoutInitial(Buffer.from('Username:')), withoutInitial(Buffer.from('Password:'))]).toEqual(['tim', 'pw']);
  });

  it('authCramMd5 has no initial response and answers the RFC 2195 challenge', () => {
    const authobject = authCramMd5('tim', 'tanstaaftanstaaf');
    expect(authobject(null)).toBeNull();
    expect(authobject(Buffer.from('<1896.697170952@postoffice.reston.mci.net>'))).toBe(
      'tim b913a602c7eda7a495b4e6e7334d3890',
    );
  });
});

describe('fromAuthObject', () => {
  it('upper-cases the name and drives the authobject: null first, then each challenge', () => {
    const calls: (string | null)[] = [];
    const mechanism = fromAuthObject('x-custom', (challenge) => {
      calls.push(challenge && challenge.toString());
      return challenge ? `re:${challenge.toString()}` : 'first';
    });
    expect(mechanism.name).toBe('X-CUSTOM');
    expect(mechanism.initialResponse()).toBe('first');
    expect(mechanism.respond(Buffer.from('hello'))).toBe('re:hello');
    expect(() => mechanism.finish()).not.toThrow();
    expect(calls).toEqual([null, 'hello']);
  });

  it('cancels when the authobject has no answer to a challenge', () => {
    expect(() => fromAuthObject('X', () => null).respond(Buffer.from('?'))).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_AUTHENTICATION' }),
    );
  });

  it('refuses a name that is not a SASL mechanism name (it goes on the AUTH line)', () => {
    for (const name of ['', 'PLAIN LOGIN', 'PLAIN\r\nQUIT', 'A'.repeat(21)]) {
      expect(() => fromAuthObject(name, () => null)).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
      );
    }
  });

  it('gives each exchange a fresh copy of a built-in authobject, so a retry starts over', () => {
    const authobject = authLogin('tim', 'pw');
    const first = fromAuthObject('LOGIN', authobject);
    expect([first.respond(Buffer.from('Username:')), first.respond(Buffer.from('Password:'))]).toEqual(['tim', 'pw']);
    const retry = fromAuthObject('LOGIN', authobject);
    expect([retry.respond(Buffer.from('Username:')), retry.respond(Buffer.from('Password:'))]).toEqual(['tim', 'pw']);
  });
});
