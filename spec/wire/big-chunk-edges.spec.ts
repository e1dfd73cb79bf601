import { firstValueFrom, from, toArray } from 'rxjs';
import { BodyEncoder, encodeBody } from '../../lib/wire/body-encoder';
import { MAX_SPAN, kernels } from '../../lib/wire/encoder-kernel';

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

  it('returns the rest of the chunk without copying when dropping that LF is the only change', () => {
    const chunk = latin1(`\n${'ab\r\n'.repeat(MAX_SPAN / 4 + 10)}`);
    const encoder = new BodyEncoder();
    encoder.push(latin1('a\r'));
    const out = encoder.push(chunk);
    expect(out.buffer).toBe(chunk.buffer);
    expect(out.equals(chunk.subarray(1))).toBe(true);
  });
});

describe('encoder kernels at the worst-case expansion (every byte doubled)', () => {
  // A full span of bare LFs: each becomes CRLF, the most output a span can give.
  const span = Buffer.alloc(MAX_SPAN, 0x0a);
  const expected = Buffer.alloc(2 * MAX_SPAN, '\r\n');

  it('fits in the wasm kernel memory', () => {
    // Where WebAssembly cannot load, the JS case below is the one in use.
    const wasm = kernels.wasm ?? kernels.js;
    expect(wasm(span, 0, true, true).equals(expected)).toBe(true);
  });

  it('fits in the JS kernel scratch buffer when it is first sized', () => {
    let js!: typeof kernels.js;
    jest.isolateModules(() => {
      js = (require('../../lib/wire/encoder-kernel') as { kernels: typeof kernels }).kernels.js;
    });
    // Dots after each line end are doubled too: "\n." gives "\r\n..".
    const input = latin1('.\n'.repeat(5000));
    expect(js(input, 0, true, true).toString('latin1')).toBe('..\r\n'.repeat(5000));
  });
});

describe('encodeBody without a terminator', () => {
  it('emits no empty chunk at the end when the body already ends a line', async () => {
    const chunks = await firstValueFrom(
      from([latin1('a\r\n')]).pipe(encodeBody({ dotStuff: false, terminate: false }), toArray()),
    );
    expect(chunks.map((c) => Buffer.from(c).toString('latin1'))).toEqual(['a\r\n']);
  });
});
