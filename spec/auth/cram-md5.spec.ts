import { createHmac } from 'crypto';
import { cramMd5Mechanism } from '../../lib/auth/cram-md5';

// RFC 2195 §2 example.
const challenge = '<1896.697170952@postoffice.reston.mci.net>';
const credentials = { user: 'tim', password: 'tanstaaftanstaaf' };

describe('cramMd5Mechanism', () => {
  it('answers the RFC 2195 challenge with user SP hex(HMAC-MD5)', () => {
    const independent = createHmac('md5', Buffer.from('tanstaaftanstaaf')).update(challenge, 'latin1').digest('hex');
    expect(independent).toBe('b913a602c7eda7a495b4e6e7334d3890');
    const cram = cramMd5Mechanism(credentials);
    expect(cram.name).toBe('CRAM-MD5');
    expect(cram.initialResponse()).toBeNull();
    expect(cram.respond(Buffer.from(challenge))).toBe(`tim ${independent}`);
    expect(() => cram.finish()).not.toThrow();
  });

  it('cancels on an empty challenge, which could be replayed', () => {
    expect(() => cramMd5Mechanism(credentials).respond(Buffer.alloc(0))).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_AUTHENTICATION' }),
    );
  });

  it('cancels on a second challenge', () => {
    const cram = cramMd5Mechanism(credentials);
    cram.respond(Buffer.from(challenge));
    expect(() => cram.respond(Buffer.from(challenge))).toThrow(expect.objectContaining({ smtpCode: 334 }));
  });
});
