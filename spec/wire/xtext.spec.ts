import { xtext } from '../../lib/wire/xtext';

describe('xtext', () => {
  it('leaves printable ASCII alone except "+" and "="', () => {
    expect(xtext('user@example.com')).toBe('user@example.com');
    expect(xtext('a+b=c')).toBe('a+2Bb+3Dc');
  });

  it('hex-encodes blanks, controls and UTF-8 bytes in upper case', () => {
    expect(xtext('a b\r\n')).toBe('a+20b+0D+0A');
    expect(xtext('é')).toBe('+C3+A9');
  });
});
