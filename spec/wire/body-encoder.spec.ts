import { from, lastValueFrom, NEVER, Observable, Subject, toArray } from 'rxjs';
import { BodyEncoder, encodeBody, EncodeBodyOptions } from '../../lib/wire/body-encoder';

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

/** mulberry32: a small seeded PRNG, so a failing case can be replayed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBody(random: () => number): string {
  const alphabet = ['a', '.', '\r', '\n'];
  const length = Math.floor(random() * 40);
  let body = '';
  for (let i = 0; i < length; i++) body += alphabet[Math.floor(random() * alphabet.length)];
  return body;
}

/** Random cut points, plus every cut between CR and LF and right before every dot. */
function chunkings(body: string, random: () => number): string[][] {
  const cutAt = (cuts: number[]): string[] => {
    const sorted = [...new Set(cuts)].filter((c) => c > 0 && c < body.length).sort((a, b) => a - b);
    return [0, ...sorted].map((start, i) => body.slice(start, sorted[i] ?? body.length));
  };
  const randomCuts = Array.from({ length: 4 }, () => Math.floor(random() * (body.length + 1)));
  const tricky = [...body].flatMap((c, i) => ((c === '\n' && body[i - 1] === '\r') || c === '.' ? [i] : []));
  const everyByte = [...body].map((_, i) => i);
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
    const random = prng(0x5eed);
    const bodies = Array.from({ length: 300 }, () => randomBody(random));

    it('gives the same bytes as a single-chunk encoding and decodes back to the canonical body', async () => {
      for (const body of bodies) {
        const whole = await encode([body]);
        expect(onlyCrlf(whole)).toBe(true);
        const expected = canonical(body);
        expect(decodeData(whole)).toBe(expected === '' || expected.endsWith('\r\n') ? expected : `${expected}\r\n`);
        for (const chunks of chunkings(body, random)) {
          expect({ chunks, wire: await encode(chunks) }).toEqual({ chunks, wire: whole });
        }
      }
    });

    it('keeps BDAT output chunking-independent too', async () => {
      const bdat = { dotStuff: false, terminate: false } as const;
      for (const body of bodies) {
        const whole = await encode([body], bdat);
        expect(whole).toBe(canonical(body));
        for (const chunks of chunkings(body, random)) expect(await encode(chunks, bdat)).toBe(whole);
      }
    });
  });

  describe('as an operator', () => {
    it('emits at most one chunk per input chunk, then the terminator', async () => {
      const out = await lastValueFrom(from([bytes('a\n.b'), bytes('\r'), bytes('\n'), bytes('c')]).pipe(encodeBody(), toArray()));
      expect(out.map((c) => Buffer.from(c).toString('latin1'))).toEqual(['a\r\n..b', '\r\n', 'c', '\r\n.\r\n']);
    });

    it('passes a chunk that needs no change through without copying', async () => {
      const chunk = new Uint8Array(bytes('a\r\nb'));
      const [out] = await lastValueFrom(from([chunk]).pipe(encodeBody({ terminate: false }), toArray()));
      expect(out.buffer).toBe(chunk.buffer);
    });

    it('emits nothing for a source that never emits', () => {
      const next = jest.fn();
      const subscription = NEVER.pipe(encodeBody()).subscribe(next);
      expect(next).not.toHaveBeenCalled();
      subscription.unsubscribe();
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
      await expect(lastValueFrom(source.pipe(encodeBody()))).rejects.toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
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
});
