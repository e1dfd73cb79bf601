import { from, lastValueFrom, Observable, Subject, toArray } from 'rxjs';
import { BodyEncoder, encodeBody, EncodeBodyOptions } from '../../lib/wire/body-encoder';
import { kernels, MAX_SPAN } from '../../lib/wire/encoder-kernel';
import { expectSilentOnNever } from '../helpers/never';
import { defined } from '../helpers/defined';
import { mulberry32 } from '../helpers/random';

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Runs `chunks` through the operator and returns the wire bytes as a latin1 string. */
async function encode(chunks: readonly string[], options?: EncodeBodyOptions): Promise<string> {
  const out = await lastValueFrom(from(chunks.map(bytes)).pipe(encodeBody(options), toArray()));
  return Buffer.concat(out).toString('latin1');
}

/** RFC 5321 §2.3.8: every line end is CRLF. The reference the encoder is checked against. */
const canonical = (text: string): string => text.replace(/\r\n|\r|\n/g, '\r\n');

/** Undoes DATA encoding: drops the terminator and one leading dot of each stuffed line. */
function decodeData(wire: string): string {
  expect(wire.endsWith('.\r\n')).toBe(true);
  const body = wire.slice(0, -3);
  if (body === '') return '';
  expect(body.endsWith('\r\n')).toBe(true);
  const lines = body.slice(0, -2).split('\r\n');
  return lines
    .map((line) => {
      // A line starting with "." was stuffed, so it must start with ".." (a lone "." would end DATA).
      if (line.startsWith('.')) expect(line.startsWith('..')).toBe(true);
      return line.startsWith('.') ? line.slice(1) : line;
    })
    .join('\r\n')
    .concat('\r\n');
}

/** True when every CR is followed by LF and every LF preceded by CR. */
const onlyCrlf = (text: string): boolean => !/\r(?!\n)|(?<!\r)\n/.test(text);

/**
 * The encoding written the obvious way, on the whole body as a string: the reference the
 * encoder must match byte for byte, whatever the chunking.
 */
function reference(body: string, options: EncodeBodyOptions): string {
  const { dotStuff = true, terminate = true, finalCrlf = terminate } = options;
  let wire = canonical(body);
  if (dotStuff) wire = wire.replace(/(^|\r\n)\./g, '$1..');
  if (finalCrlf && wire !== '' && !wire.endsWith('\r\n')) wire += '\r\n';
  return terminate ? `${wire}.\r\n` : wire;
}

/** Every valid combination of the options, defaults included. */
const allOptions: EncodeBodyOptions[] = [true, false].flatMap((dotStuff) => [
  { dotStuff },
  { dotStuff, finalCrlf: true },
  { dotStuff, terminate: false },
  { dotStuff, terminate: false, finalCrlf: true },
  { dotStuff, terminate: false, finalCrlf: false },
]);

/**
 * `BodyEncoder` as loaded where the wasm kernel does not compile (no wasm SIMD): on the JS
 * fallback of encoder-kernel.ts.
 */
function loadJsBodyEncoder(): typeof BodyEncoder {
  let loaded: typeof import('../../lib/wire/body-encoder') | undefined;
  jest.isolateModules(() => {
    jest.doMock('../../lib/wire/encoder-wasm', () => ({ ENCODER_WASM: '' }));
    expect(
      (require('../../lib/wire/encoder-kernel') as typeof import('../../lib/wire/encoder-kernel'))
        .ENCODER_IMPLEMENTATION,
    ).toBe('js');
    loaded = require('../../lib/wire/body-encoder') as typeof import('../../lib/wire/body-encoder');
  });
  return loaded!.BodyEncoder;
}

/** Pushes `chunks` through a `BodyEncoder`, some as plain Uint8Array views at an offset. */
function pushAll(
  chunks: readonly string[],
  options: EncodeBodyOptions,
  random: () => number,
  Encoder: typeof BodyEncoder = BodyEncoder,
): string {
  const encoder = new Encoder(options);
  const out = chunks.map((chunk) => {
    if (random() < 0.5) return encoder.push(bytes(chunk));
    const padded = bytes(`xx${chunk}`);
    return encoder.push(new Uint8Array(padded.buffer, padded.byteOffset + 2, chunk.length));
  });
  return Buffer.concat([...out, encoder.end()]).toString('latin1');
}

function randomBody(random: () => number): string {
  const alphabet = ['a', '.', '\r', '\n'];
  const length = Math.floor(random() * 40);
  let body = '';
  for (let i = 0; i < length; i++) body += alphabet[Math.floor(random() * alphabet.length)] ?? '';
  return body;
}

/** Random cut points, plus every cut between CR and LF and right before every dot. */
function chunkings(body: string, random: () => number): string[][] {
  const cutAt = (cuts: number[]): string[] => {
    const sorted = [...new Set(cuts)].filter((c) => c > 0 && c < body.length).sort((a, b) => a - b);
    return [0, ...sorted].map((start, i) => body.slice(start, sorted[i] ?? body.length));
  };
  const randomCuts = Array.from({ length: 4 }, () => Math.floor(random() * (body.length + 1)));
  const everyByte = Array.from({ length: body.length }, (_, i) => i);
  const tricky = everyByte.filter((i) => (body[i] === '\n' && body[i - 1] === '\r') || body[i] === '.');
  return [cutAt(randomCuts), cutAt(tricky), cutAt(everyByte)];
}

describe('encodeBody', () => {
  describe('DATA encoding (dot-stuffing and terminator)', () => {
    it.each([
      ['\n.\n', '\r\n..\r\n.\r\n'],
      ['\r.\r', '\r\n..\r\n.\r\n'],
      ['\n.\r\n', '\r\n..\r\n.\r\n'],
      ['\r\n\r\n.\r\n', '\r\n\r\n..\r\n.\r\n'],
      ['\r\r\n', '\r\n\r\n.\r\n'],
      ['.hidden', '..hidden\r\n.\r\n'],
      ['a.b\n', 'a.b\r\n.\r\n'],
      ['', '.\r\n'],
      ['hello\r\n', 'hello\r\n.\r\n'],
      ['hello', 'hello\r\n.\r\n'],
    ])('encodes %j as %j', async (body, wire) => {
      expect(await encode([body])).toBe(wire);
    });

    it('treats a CR ending one chunk and an LF starting the next as one CRLF', async () => {
      expect(await encode(['a\r', '\nb'])).toBe('a\r\nb\r\n.\r\n');
      expect(await encode(['a\r', '\n', '\n'])).toBe('a\r\n\r\n.\r\n');
    });

    it('stuffs a dot that opens a chunk after a line end', async () => {
      expect(await encode(['a\n', '.b'])).toBe('a\r\n..b\r\n.\r\n');
      expect(await encode(['a\r', '\n.', 'b'])).toBe('a\r\n..b\r\n.\r\n');
      expect(await encode(['a', '.b'])).toBe('a.b\r\n.\r\n');
    });

    it('adds only the terminator when the body ends with a CR split from nothing', async () => {
      expect(await encode(['a\r'])).toBe('a\r\n.\r\n');
    });
  });

  describe('BDAT encoding (dotStuff: false, terminate: false)', () => {
    const bdat = { dotStuff: false, terminate: false } as const;

    it('only canonicalises line ends and adds no final CRLF', async () => {
      expect(await encode(['.a\nb\rc'], bdat)).toBe('.a\r\nb\r\nc');
      expect(await encode([''], bdat)).toBe('');
    });

    it('closes the last line when finalCrlf is set', async () => {
      expect(await encode(['.a\nb'], { ...bdat, finalCrlf: true })).toBe('.a\r\nb\r\n');
      expect(await encode(['a\r\n'], { ...bdat, finalCrlf: true })).toBe('a\r\n');
    });

    it('refuses finalCrlf: false with terminate, as the final dot must start a line', async () => {
      await expect(encode(['a'], { finalCrlf: false })).rejects.toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
    });
  });

  describe('whatever the chunking (property-based, seeded)', () => {
    // Each test draws from its own PRNG, so a case replays the same when a test runs alone.
    const bodyRandom = mulberry32(0x5eed);
    const bodies = Array.from({ length: 300 }, () => randomBody(bodyRandom));

    it('gives the same bytes as a single-chunk encoding and decodes back to the canonical body', async () => {
      const random = mulberry32(0xc0de);
      for (const body of bodies) {
        const whole = await encode([body]);
        const expected = canonical(body);
        const decoded = expected === '' || expected.endsWith('\r\n') ? expected : `${expected}\r\n`;
        // The body is part of what is compared, so a failure prints the case.
        expect({ body, onlyCrlf: onlyCrlf(whole), decoded: decodeData(whole) }).toEqual({
          body,
          onlyCrlf: true,
          decoded,
        });
        for (const chunks of chunkings(body, random)) {
          expect({ chunks, wire: await encode(chunks) }).toEqual({ chunks, wire: whole });
        }
      }
    });

    it('keeps BDAT output chunking-independent too', async () => {
      const bdat = { dotStuff: false, terminate: false } as const;
      const random = mulberry32(0xb0a7);
      for (const body of bodies) {
        const whole = await encode([body], bdat);
        expect({ body, whole }).toEqual({ body, whole: canonical(body) });
        for (const chunks of chunkings(body, random))
          expect({ chunks, wire: await encode(chunks, bdat) }).toEqual({ chunks, wire: whole });
      }
    });
  });

  describe('against a reference implementation (differential, seeded)', () => {
    it('matches it for random bodies, chunkings and options, with the wasm kernel and the JS fallback', () => {
      const JsBodyEncoder = loadJsBodyEncoder();
      const random = mulberry32(0xd1ff);
      // 0xC3 opens a UTF-8 sequence: a high byte must pass through as it is. Runs of "a" make
      // bodies with lines long enough to cross the kernel's 16-byte blocks.
      const symbols = ['.', '\r', '\n', '\xc3'];
      for (let run = 0; run < 3000; run++) {
        const length = Math.floor(random() * (run % 10 === 0 ? 400 : 60));
        let body = '';
        while (body.length < length) {
          body +=
            random() < 0.3
              ? 'a'.repeat(Math.floor(random() * 40))
              : defined(symbols[Math.floor(random() * symbols.length)], 'a symbol');
        }
        const cuts = Array.from({ length: Math.floor(random() * 6) }, () => Math.floor(random() * (body.length + 1)));
        const points = [0, ...cuts.sort((a, b) => a - b), body.length];
        const chunks = points.slice(1).map((end, i) => body.slice(points[i], end));
        const options = defined(allOptions[run % allOptions.length], 'encoder options');
        const wire = reference(body, options);
        expect({ chunks, options, wire: pushAll(chunks, options, random) }).toEqual({ chunks, options, wire });
        // Its own PRNG, so the cases above stay those of the wasm-only version of this test.
        const more = mulberry32(run);
        expect({ chunks, options, js: pushAll(chunks, options, more, JsBodyEncoder) }).toEqual({
          chunks,
          options,
          js: wire,
        });

        // Both implementations of encodeSpan directly, from a random start, at a line start or not.
        const start = Math.floor(more() * (body.length + 1));
        const atLineStart = more() < 0.5;
        const dotStuff = options.dotStuff ?? true;
        const span = { dotStuff, terminate: false, finalCrlf: false };
        const rest = body.slice(start);
        // Not at a line start: as if a byte that ends no line came before.
        const expected = atLineStart ? reference(rest, span) : reference(`x${rest}`, span).slice(1);
        const input = bytes(body);
        const spanCase = { body, start, atLineStart, dotStuff };
        const js = kernels.js(input, start, dotStuff, atLineStart).toString('latin1');
        const wasm = kernels.wasm!(input, start, dotStuff, atLineStart).toString('latin1');
        expect({ ...spanCase, js, wasm }).toEqual({ ...spanCase, js: expected, wasm: expected });
      }
    });
  });

  describe('as an operator', () => {
    it('emits at most one chunk per input chunk, then the terminator', async () => {
      const out = await lastValueFrom(
        from([bytes('a\n.b'), bytes('\r'), bytes('\n'), bytes('c')]).pipe(encodeBody(), toArray()),
      );
      expect(out.map((c) => Buffer.from(c).toString('latin1'))).toEqual(['a\r\n..b', '\r\n', 'c', '\r\n.\r\n']);
    });

    it('passes a chunk that needs no change through without copying', async () => {
      const chunk = new Uint8Array(bytes('a\r\nb'));
      const [out] = await lastValueFrom(from([chunk]).pipe(encodeBody({ terminate: false }), toArray()));
      expect(out?.buffer).toBe(chunk.buffer);
    });

    it('emits nothing for a source that never emits', async () => {
      await expectSilentOnNever(encodeBody());
    });

    it('forwards an error without a terminator', () => {
      const source = new Subject<Uint8Array>();
      const seen: string[] = [];
      const error = jest.fn();
      source.pipe(encodeBody()).subscribe({ next: (c) => seen.push(Buffer.from(c).toString('latin1')), error });
      source.next(bytes('a\n'));
      source.error(new Error('disk gone'));
      expect(seen).toEqual(['a\r\n']);
      expect(error).toHaveBeenCalledWith(new Error('disk gone'));
    });

    it('errors on a chunk that is not bytes', async () => {
      const source = from(['text' as unknown as Uint8Array]);
      await expect(lastValueFrom(source.pipe(encodeBody()))).rejects.toMatchObject({
        code: 'ERR_SMTP_INVALID_ARGUMENT',
      });
    });

    it('unsubscribes from the source when unsubscribed early', () => {
      const source = new Subject<Uint8Array>();
      const subscription = source.pipe(encodeBody()).subscribe();
      source.next(bytes('a'));
      subscription.unsubscribe();
      expect(source.observed).toBe(false);
    });

    it('is cold: each subscription encodes with its own state', async () => {
      const encoded$: Observable<Uint8Array> = from([bytes('a\r')]).pipe(encodeBody());
      const first = Buffer.concat(await lastValueFrom(encoded$.pipe(toArray())));
      const second = Buffer.concat(await lastValueFrom(encoded$.pipe(toArray())));
      expect(second.equals(first)).toBe(true);
    });
  });
});

describe('BodyEncoder', () => {
  it('can be driven without RxJS', () => {
    const encoder = new BodyEncoder();
    const out = [encoder.push(bytes('.a\r')), encoder.push(bytes('\n.b')), encoder.end()];
    expect(Buffer.concat(out).toString('latin1')).toBe('..a\r\n..b\r\n.\r\n');
  });

  it('handles long bodies with many insertions in one chunk', () => {
    const line = 'x'.repeat(20);
    const body = `${line}\n.${line}\r`.repeat(2000);
    const encoder = new BodyEncoder();
    const wire = Buffer.concat([encoder.push(bytes(body)), encoder.end()]).toString('latin1');
    expect(wire).toBe(`${line}\r\n..${line}\r\n`.repeat(2000) + '.\r\n');
  });

  it('encodes a chunk bigger than the kernel takes at once as it would in small chunks', () => {
    // A CRLF and a line-leading dot on each side of every span boundary.
    const filler = 'a'.repeat(MAX_SPAN - 2);
    const body = `${filler}\r\n.${filler}\r\r.${filler}\n\n.${filler}.\r`;
    for (const Encoder of [BodyEncoder, loadJsBodyEncoder()]) {
      for (const options of allOptions) {
        const encoder = new Encoder(options);
        const wire = Buffer.concat([encoder.push(bytes(body)), encoder.end()]).toString('latin1');
        expect(wire === reference(body, options)).toBe(true);
      }
    }
  });

  it('returns a big chunk that needs no change without copying it', () => {
    const chunk = bytes('ab\r\n'.repeat(MAX_SPAN));
    const encoder = new BodyEncoder();
    encoder.push(bytes('a\r'));
    const out = encoder.push(chunk);
    expect(out.buffer).toBe(chunk.buffer);
    expect(out.equals(chunk)).toBe(true);
  });
});
