import { BodyEncoder } from '../../lib/wire/body-encoder';
import { MAX_SPAN } from '../../lib/wire/encoder-kernel';

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

/** The wire bytes of `chunks` pushed one by one, then the end. */
function encode(chunks: readonly string[]): string {
  const encoder = new BodyEncoder();
  return Buffer.concat([...chunks.map((chunk) => encoder.push(latin1(chunk))), encoder.end()]).toString('latin1');
}

describe('BodyEncoder, a chunk over the kernel span after one that ended in CR', () => {
  // The CR of "a\r" is already out as CRLF; the big chunk's LF belongs to it, and the "." that
  // follows starts a line (RFC 5321 §4.5.2: it must be doubled).
  const filler = 'x'.repeat(MAX_SPAN + 10);

  it('drops the LF of the split CRLF and stuffs the dot after it', () => {
    expect(encode(['a\r', `\n.${filler}`])).toBe(`a\r\n..${filler}\r\n.\r\n`);
  });
});
