import fc from 'fast-check';
import { from, lastValueFrom, toArray } from 'rxjs';
import { BodyEncoder, EncodeBodyOptions, encodeBody } from '../../lib/wire/body-encoder';
import { bodyFacts } from '../../lib/wire/body-source';
import { MAX_SPAN, kernels } from '../../lib/wire/encoder-kernel';

/**
 * The body encoder against a reference written the obvious way on the whole body: every CR, LF
 * and CRLF becomes CRLF (RFC 5321 §2.3.8), a line-leading dot is doubled (§4.5.2), the last line
 * is closed and ".\r\n" appended (§4.1.1.4) when asked. The encoder gets the body cut anywhere,
 * CR/LF pairs and dots across the cuts, and chunks bigger than one kernel span (256 KiB).
 */

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

function reference(body: string, options: EncodeBodyOptions): string {
  const { dotStuff = true, terminate = true, finalCrlf = terminate } = options;
  let wire = body.replace(/\r\n|\r|\n/g, '\r\n');
  if (dotStuff) wire = wire.replace(/(^|\r\n)\./g, '$1..');
  if (finalCrlf && wire !== '' && !wire.endsWith('\r\n')) wire += '\r\n';
  return terminate ? `${wire}.\r\n` : wire;
}

/** `BodyEncoder` on the JS fallback, as loaded where the wasm kernel does not compile. */
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

const encoders: [string, typeof BodyEncoder][] = [
  ...(kernels.wasm ? [['wasm kernel', BodyEncoder] as [string, typeof BodyEncoder]] : []),
  ['JS fallback', loadJsBodyEncoder()],
];

/** The body cut at `cuts` (positions modulo its length), each chunk a Buffer or a bare Uint8Array view at an offset. */
function chunksOf(body: string, cuts: readonly number[], views: readonly boolean[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  return [0, ...points].map((at, i) => {
    const chunk = body.slice(at, points[i] ?? body.length);
    if (!views[i % Math.max(views.length, 1)]) return latin1(chunk);
    const padded = latin1(`xx${chunk}`);
    return new Uint8Array(padded.buffer, padded.byteOffset + 2, chunk.length);
  });
}

function pushAll(Encoder: typeof BodyEncoder, chunks: readonly Uint8Array[], options: EncodeBodyOptions): string {
  const encoder = new Encoder(options);
  const out = chunks.map((chunk) => encoder.push(chunk));
  return Buffer.concat([...out, encoder.end()]).toString('latin1');
}

// Line ends, dots and a high byte (0xC3 opens UTF-8), and runs long enough to cross the kernel's 16-byte blocks.
const token = fc.oneof(
  fc.constantFrom('.', '\r', '\n', '\r\n', '\r\r', '\n.', '\r.', '..', '\xc3', 'a'),
  fc.nat(40).map((n) => 'a'.repeat(n)),
);
const smallBody = fc.array(token, { maxLength: 40 }).map((parts) => parts.join(''));
// Fillers around one kernel span, so that span boundaries inside a chunk fall next to CR, LF and dots.
const filler = fc.integer({ min: MAX_SPAN - 3, max: MAX_SPAN + 3 }).map((n) => 'a'.repeat(n));
const bigBody = fc
  .array(fc.oneof({ weight: 3, arbitrary: token }, { weight: 1, arbitrary: filler }), { minLength: 3, maxLength: 12 })
  .map((parts) => parts.join(''));

const options: fc.Arbitrary<EncodeBodyOptions> = fc.constantFrom<EncodeBodyOptions>(
  {},
  { finalCrlf: true },
  { dotStuff: true, terminate: false, finalCrlf: true },
  { dotStuff: false, terminate: false },
  { dotStuff: false, terminate: false, finalCrlf: true },
  { dotStuff: true, terminate: false },
);
const cuts = fc.array(fc.nat(), { maxLength: 10 });
const views = fc.array(fc.boolean(), { maxLength: 4 });

describe('body encoder (property-based)', () => {
  describe.each(encoders)('BodyEncoder on the %s', (_name, Encoder) => {
    it('matches the reference for any body cut anywhere', () => {
      fc.assert(
        fc.property(smallBody, options, cuts, views, (body, opts, at, asViews) => {
          expect(pushAll(Encoder, chunksOf(body, at, asViews), opts)).toBe(reference(body, opts));
        }),
        { numRuns: 600 },
      );
    });

    it('matches the reference with chunks bigger than a kernel span', () => {
      fc.assert(
        fc.property(bigBody, options, fc.array(fc.nat(), { maxLength: 3 }), views, (body, opts, at, asViews) => {
          const wire = pushAll(Encoder, chunksOf(body, at, asViews), opts);
          expect(wire === reference(body, opts)).toBe(true);
        }),
        { numRuns: 25 },
      );
    });

    it('matches the reference for a big chunk after one that ended in CR, whatever few changes it needs', () => {
      // Few changes on purpose: an LF dropped and one byte added leave the length unchanged.
      const change = fc.constantFrom('', '.', '..', 'a\n', 'a\r', '\r\n', '\n.', 'a\r.');
      fc.assert(
        fc.property(
          smallBody,
          change,
          filler,
          change,
          fc.boolean(),
          options,
          (head, mid, big, tail, splitCrlf, opts) => {
            const chunks = [`${head}\r`, `${splitCrlf ? '\n' : ''}${mid}${big}${tail}`];
            const wire = pushAll(Encoder, chunks.map(latin1), opts);
            expect(wire === reference(chunks.join(''), opts)).toBe(true);
          },
        ),
        { numRuns: 40 },
      );
    });
  });

  it('gives the reference through the encodeBody operator', async () => {
    await fc.assert(
      fc.asyncProperty(smallBody, options, cuts, async (body, opts, at) => {
        const out = await lastValueFrom(from(chunksOf(body, at, [])).pipe(encodeBody(opts), toArray()));
        expect(Buffer.concat(out).toString('latin1')).toBe(reference(body, opts));
      }),
      { numRuns: 300 },
    );
  });

  it('has both kernels agree with the reference on a span, from any start, at a line start or not', () => {
    fc.assert(
      fc.property(smallBody, fc.nat(), fc.boolean(), fc.boolean(), (body, at, atLineStart, dotStuff) => {
        const start = at % (body.length + 1);
        const span = { dotStuff, terminate: false, finalCrlf: false };
        // Not at a line start: as if a byte that ends no line came before.
        const expected = atLineStart
          ? reference(body.slice(start), span)
          : reference(`x${body.slice(start)}`, span).slice(1);
        for (const kernel of [kernels.js, kernels.wasm ?? kernels.js]) {
          expect(kernel(latin1(body), start, dotStuff, atLineStart).toString('latin1')).toBe(expected);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('has bodyFacts count the DATA bytes the encoder writes, before the terminator', () => {
    fc.assert(
      fc.property(smallBody, fc.boolean(), (body, asString) => {
        // A string body goes out as UTF-8, bytes as they are.
        const size = (text: string): number => (asString ? Buffer.byteLength(text, 'utf8') : text.length);
        const facts = bodyFacts(asString ? body : latin1(body));
        const data = reference(body, { finalCrlf: true, terminate: false });
        const bdat = reference(body, { dotStuff: false, terminate: false, finalCrlf: true });
        expect(facts.canonicalSize).toBe(size(bdat));
        expect(facts.canonicalSize! + facts.lineLeadingDots!).toBe(size(data));
      }),
      { numRuns: 500 },
    );
  });
});
