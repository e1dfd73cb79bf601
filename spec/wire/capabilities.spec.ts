import { authMechanisms, parseCapabilities, sizeLimit } from '../../lib/wire/capabilities';

describe('parseCapabilities', () => {
  it('skips the first line and lower-cases keywords (smtplib esmtp_features)', () => {
    const features = parseCapabilities('mx.test greets you\nPIPELINING\nSIZE 35882577\n8BITMIME\nSTARTTLS');
    expect(features).toEqual({ pipelining: '', size: '35882577', '8bitmime': '', starttls: '' });
  });

  it("appends AUTH values across lines, with smtplib's leading space", () => {
    const features = parseCapabilities('mx\nAUTH PLAIN LOGIN\nAUTH CRAM-MD5');
    expect(features.auth).toBe(' PLAIN LOGIN CRAM-MD5');
  });

  it('folds the old-style AUTH= line into auth', () => {
    const features = parseCapabilities('mx\nAUTH=LOGIN PLAIN\nAUTH LOGIN PLAIN CRAM-MD5');
    expect(features.auth).toBe(' LOGIN PLAIN LOGIN PLAIN CRAM-MD5');
    expect(authMechanisms(features)).toEqual(['LOGIN', 'PLAIN', 'CRAM-MD5']);
  });

  it('keeps the last value of a repeated keyword and ignores lines that are not keywords', () => {
    expect(parseCapabilities('mx\nSIZE 1\nSIZE 2\n-bogus\n')).toEqual({ size: '2' });
  });

  it('reads the SIZE limit; 0 means none', () => {
    expect(sizeLimit({ size: '1000' })).toBe(1000);
    expect(sizeLimit({ size: '0' })).toBeUndefined();
    expect(sizeLimit({})).toBeUndefined();
  });
});
