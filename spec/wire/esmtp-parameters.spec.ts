import { authMechanisms, parseCapabilities } from '../../lib/wire/capabilities';
import { xtext } from '../../lib/wire/xtext';

describe('xtext (RFC 3461 §4)', () => {
  it('encodes DEL (0x7f), which is outside "!" to "~"', () => {
    expect(xtext('a\x7fb~')).toBe('a+7Fb~');
  });
});

describe('parseCapabilities', () => {
  it('folds only a line that starts with AUTH= into auth, not a keyword that contains it', () => {
    const features = parseCapabilities('mx.test\nX-MYAUTH=PLAIN\nAUTH LOGIN');
    expect(features).toEqual({ 'x-myauth': '=PLAIN', auth: ' LOGIN' });
    expect(authMechanisms(features)).toEqual(['LOGIN']);
  });
});
