/**
 * xtext (RFC 3461 §4): the encoding of DSN parameter values (ENVID, ORCPT).
 * Every octet outside "!" to "~", and "+" and "=" themselves, becomes "+XX"
 * (upper-case hex) of its UTF-8 bytes.
 *
 * @example
 * xtext('a+b=c d') // 'a+2Bb+3Dc+20d'
 */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out +=
      byte > 0x20 && byte < 0x7f && byte !== 0x2b && byte !== 0x3d
        ? String.fromCharCode(byte)
        : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
