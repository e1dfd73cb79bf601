import crypto from 'crypto';
import { scramSha1Mechanism, scramSha256Mechanism, type ScramOptions } from '../../lib/auth/scram';
import type { TextMechanism } from '../../lib/auth/mechanism';
import { SMTPInvalidArgumentError } from '../../lib/errors';
import { thrown } from '../helpers/thrown';

const ascii = (text: string) => Buffer.from(text, 'utf8');

// RFC 5802 §5.
const SHA1 = {
  factory: scramSha1Mechanism,
  name: 'SCRAM-SHA-1',
  clientNonce: 'fyko+d2lbbFgONRv9qkxdawL',
  clientFirst: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
  serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
  clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
  serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
};

// RFC 7677 §3.
const SHA256 = {
  factory: scramSha256Mechanism,
  name: 'SCRAM-SHA-256',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

describe.each([SHA1, SHA256])('$name', (rfc) => {
  const start = (options: ScramOptions = {}, password = 'pencil'): TextMechanism =>
    rfc.factory({ user: 'user', password }, { nonce: rfc.clientNonce, ...options });
  const afterServerFirst = (): TextMechanism => {
    const scram = start();
    scram.initialResponse();
    scram.respond(ascii(rfc.serverFirst));
    return scram;
  };
  const serverFirstWith = (replace: [RegExp, string]) => ascii(rfc.serverFirst.replace(...replace));

  it('reproduces the RFC exchange byte for byte and verifies the server signature', () => {
    const scram = start();
    expect(scram.name).toBe(rfc.name);
    expect(scram.initialResponse()).toBe(rfc.clientFirst);
    expect(scram.respond(ascii(rfc.serverFirst))).toBe(rfc.clientFinal);
    expect(scram.respond(ascii(rfc.serverFinal))).toBe('');
    expect(() => scram.finish()).not.toThrow();
  });

  it('sends the client-first-message in answer to the empty 334 when there was no initial response', () => {
    const scram = start();
    expect(scram.respond(Buffer.alloc(0))).toBe(rfc.clientFirst);
    expect(scram.respond(ascii(rfc.serverFirst))).toBe(rfc.clientFinal);
  });

  it('rejects a tampered server signature, and then the 235', () => {
    const scram = afterServerFirst();
    const tampered = rfc.serverFinal.replace(/^v=./, (v) => (v === 'v=A' ? 'v=B' : 'v=A'));
    const error = thrown(() => scram.respond(ascii(tampered)));
    expect(error).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION', smtpCode: 334 });
    expect(error.message).toMatch(/server signature is wrong/);
    expect(thrown(() => scram.finish())).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION', smtpCode: 235 });
  });

  it('rejects a server signature of the wrong length', () => {
    expect(() => afterServerFirst().respond(ascii('v=AAAA'))).toThrow(/server signature is wrong/);
  });

  it('refuses a 235 that was not preceded by a verified server signature', () => {
    const error = thrown(() => afterServerFirst().finish());
    expect(error).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION', smtpCode: 235 });
    expect(error.message).toMatch(/no verified server signature/);
  });

  it('turns an e= server-final-message into an authentication error carrying it', () => {
    const error = thrown(() => afterServerFirst().respond(ascii('e=invalid-proof')));
    expect(error).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION' });
    expect(error.message).toContain('invalid-proof');
    expect(error.message).not.toContain('pencil');
  });

  it('fails fast on an iteration count over the bound, before any key derivation', () => {
    const scram = start();
    scram.initialResponse();
    // Deriving 2e9 iterations would block the process for many minutes: no clock can time that,
    // so the derivation itself is watched (and refused, so a regression fails instead of hanging).
    const derive = jest.spyOn(crypto, 'pbkdf2Sync').mockImplementation(() => {
      throw new Error('key derivation started');
    });
    const error = thrown(() => scram.respond(serverFirstWith([/i=4096/, 'i=2000000000'])));
    derive.mockRestore();
    expect(derive).not.toHaveBeenCalled();
    expect(error).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION' });
    expect(error.message).toMatch(/2000000000 iterations, more than the limit of 100000/);
  });

  it('accepts a lower maximum and an opt-in minimum', () => {
    for (const options of [{ maxIterations: 4095 }, { minIterations: 4097 }]) {
      const scram = start(options);
      scram.initialResponse();
      expect(() => scram.respond(ascii(rfc.serverFirst))).toThrow(/iterations/);
    }
    const atBounds = start({ minIterations: 4096, maxIterations: 4096 });
    atBounds.initialResponse();
    expect(atBounds.respond(ascii(rfc.serverFirst))).toBe(rfc.clientFinal);
  });

  it('fails when the server nonce does not extend the client nonce', () => {
    for (const nonce of ['r=someoneElsesNonce', `r=${rfc.clientNonce}`, `r=X${rfc.clientNonce}abc`]) {
      const scram = start();
      scram.initialResponse();
      expect(() => scram.respond(serverFirstWith([/^r=[^,]*/, nonce]))).toThrow(
        /server nonce does not extend the client nonce/,
      );
    }
  });

  it('rejects a mandatory extension', () => {
    const scram = start();
    scram.initialResponse();
    expect(() => scram.respond(ascii(`m=future,${rfc.serverFirst}`))).toThrow(/extension/);
  });

  it.each([
    ['a missing salt', [/,s=[^,]*/, ''] as [RegExp, string]],
    ['a salt that is not base64', [/,s=[^,]*/, ',s=not*base64'] as [RegExp, string]],
    ['an empty salt', [/,s=[^,]*/, ',s='] as [RegExp, string]],
    ['a zero iteration count', [/i=4096/, 'i=0'] as [RegExp, string]],
    ['a leading zero', [/i=4096/, 'i=04096'] as [RegExp, string]],
    ['a non-numeric count', [/i=4096/, 'i=4k'] as [RegExp, string]],
    ['attributes out of order', [/^(r=[^,]*),(s=[^,]*)/, '$2,$1'] as [RegExp, string]],
    ['a malformed extension', [/$/, ',garbage'] as [RegExp, string]],
  ])('rejects a server-first-message with %s', (_, replace) => {
    const scram = start();
    scram.initialResponse();
    expect(() => scram.respond(serverFirstWith(replace))).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_AUTHENTICATION', message: expect.stringMatching(/malformed/) }),
    );
  });

  it('ignores optional extensions after the iteration count', () => {
    const scram = start();
    scram.initialResponse();
    expect(scram.respond(ascii(`${rfc.serverFirst},x=whatever`))).toMatch(/^c=biws,r=/);
  });

  it('rejects a server message that is not UTF-8', () => {
    const scram = start();
    scram.initialResponse();
    expect(() => scram.respond(Buffer.from([0x72, 0x3d, 0xff, 0xfe]))).toThrow(/not UTF-8/);
  });

  it('cancels on a challenge before the client-first-message and after the server-final-message', () => {
    expect(() => start().respond(ascii(rfc.serverFirst))).toThrow(/before the client-first-message/);
    const scram = afterServerFirst();
    scram.respond(ascii(rfc.serverFinal));
    expect(() => scram.respond(Buffer.alloc(0))).toThrow(/after its final message/);
  });

  it('escapes , and = in the user name', () => {
    const scram = rfc.factory({ user: 'a,b=c', password: 'pencil' }, { nonce: 'abc' });
    expect(scram.initialResponse()).toBe('n,,n=a=2Cb=3Dc,r=abc');
  });

  it('SASLpreps the user name and the password', () => {
    // RFC 4013 §3: SOFT HYPHEN maps to nothing; ROMAN NUMERAL NINE normalises (NFKC) to "IX".
    const prepped = rfc.factory({ user: 'us\u00ADer', password: '\u2168' }, { nonce: rfc.clientNonce });
    const plain = rfc.factory({ user: 'user', password: 'IX' }, { nonce: rfc.clientNonce });
    expect(prepped.initialResponse()).toBe(rfc.clientFirst);
    plain.initialResponse();
    expect(prepped.respond(ascii(rfc.serverFirst))).toBe(plain.respond(ascii(rfc.serverFirst)));
  });

  it('refuses a password SASLprep prohibits, without showing it', () => {
    const error = thrown(() => rfc.factory({ user: 'user', password: 'hunter\u00072' }));
    expect(error).toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
    expect(error.message).toMatch(/password/);
    expect(error.message).not.toContain('hunter');
  });

  it('refuses an empty user name and a nonce with a comma', () => {
    expect(() => rfc.factory({ user: '', password: 'pencil' })).toThrow(/user name is empty/);
    expect(() => rfc.factory({ user: 'user', password: 'pencil' }, { nonce: 'a,b' })).toThrow(/nonce/);
  });

  // SASLprep maps these to nothing (RFC 3454 B.1); @mongodb-js/saslprep itself throws a TypeError on them.
  it.each(['\u00ad', '\u00ad\u200d', '\ufeff', '\u034f\u2060'])(
    'refuses a user name that SASLprep makes empty (%j) as empty, not with a TypeError',
    (user) => {
      const error = thrown(() => rfc.factory({ user, password: 'pencil' }));
      expect(error).toBeInstanceOf(SMTPInvalidArgumentError);
      expect(error.message).toBe(`${rfc.name}: the user name is empty`);
    },
  );

  it('draws a fresh random nonce for each attempt', () => {
    const first = rfc.factory({ user: 'user', password: 'pencil' }).initialResponse();
    const second = rfc.factory({ user: 'user', password: 'pencil' }).initialResponse();
    expect(first).toMatch(/^n,,n=user,r=[A-Za-z0-9+/]{32}$/);
    expect(first).not.toBe(second);
  });
});
