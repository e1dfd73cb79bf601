import { plainMechanism } from '../../lib/auth/plain';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('plainMechanism', () => {
  const credentials = { user: 'Mr.A@somewhere.com', password: 'somepassword' };

  it('sends \\0user\\0password as the initial response (smtplib vector)', () => {
    const plain = plainMechanism(credentials);
    expect(plain.name).toBe('PLAIN');
    expect(b64(plain.initialResponse()!)).toBe('AE1yLkFAc29tZXdoZXJlLmNvbQBzb21lcGFzc3dvcmQ=');
    expect(() => plain.finish()).not.toThrow();
  });

  it('answers the empty 334 with the credentials when no initial response was sent', () => {
    const plain = plainMechanism(credentials);
    expect(b64(plain.respond(Buffer.alloc(0)))).toBe('AE1yLkFAc29tZXdoZXJlLmNvbQBzb21lcGFzc3dvcmQ=');
  });

  it('sends the fields as UTF-8', () => {
    expect(Buffer.from(plainMechanism({ user: 'jürgen', password: 'pässword' }).initialResponse()!)).toEqual(
      Buffer.from('\0jürgen\0pässword', 'utf8'),
    );
  });

  it('cancels when the server challenges after the credentials', () => {
    const plain = plainMechanism(credentials);
    plain.initialResponse();
    expect(() => plain.respond(Buffer.from('again?'))).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_AUTHENTICATION', smtpCode: 334 }),
    );
  });

  it('refuses a NUL in a field without echoing it', () => {
    for (const bad of [
      { user: 'a\0b', password: 'pw' },
      { user: 'a', password: 's3cr\0t' },
    ]) {
      let error: unknown;
      try {
        plainMechanism(bad);
      } catch (err) {
        error = err;
      }
      expect(error).toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
      expect((error as Error).message).not.toContain('s3cr');
    }
  });
});
