import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { ENCODER_IMPLEMENTATION, EncodeSpan, kernels } from '../../lib/wire/encoder-kernel';

type KernelModule = typeof import('../../lib/wire/encoder-kernel');

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Loads encoder-kernel afresh after `setup` (mocks, globals), in its own module registry. */
function loadKernel(setup: () => void): KernelModule {
  let loaded: KernelModule | undefined;
  jest.isolateModules(() => {
    setup();
    loaded = require('../../lib/wire/encoder-kernel') as KernelModule;
  });
  return loaded!;
}

describe('encoder-kernel', () => {
  it('uses the wasm kernel where WebAssembly with SIMD is available', () => {
    expect(ENCODER_IMPLEMENTATION).toBe('wasm');
    expect(kernels.wasm).toBeDefined();
  });

  it('falls back to JS when the kernel does not compile (as on a runtime without wasm SIMD)', () => {
    // No bytes at all: WebAssembly.Module throws a CompileError, as for an unsupported opcode.
    const fallback = loadKernel(() => jest.doMock('../../lib/wire/encoder-wasm', () => ({ ENCODER_WASM: '' })));
    expect(fallback.ENCODER_IMPLEMENTATION).toBe('js');
    expect(fallback.kernels.wasm).toBeUndefined();
    expect(fallback.encodeSpan(bytes('a\n.b'), 0, true, true).toString('latin1')).toBe('a\r\n..b');
  });

  it('falls back to JS when there is no WebAssembly global', () => {
    const global = globalThis as { WebAssembly?: unknown };
    const saved = global.WebAssembly;
    try {
      const fallback = loadKernel(() => delete global.WebAssembly);
      expect(fallback.ENCODER_IMPLEMENTATION).toBe('js');
      expect(fallback.encodeSpan).toBe(fallback.encodeSpanJs);
    } finally {
      global.WebAssembly = saved;
    }
  });

  describe.each([
    ['wasm', kernels.wasm!],
    ['js', kernels.js],
  ] as [string, EncodeSpan][])('encodeSpan (%s)', (_, encodeSpan) => {
    it.each([
      ['a\n.b\r\nc', 0, true, true, 'a\r\n..b\r\nc'],
      ['.a', 0, true, false, '.a'],
      ['.a', 0, false, true, '.a'],
      ['\r\r\n\n', 0, true, true, '\r\n\r\n\r\n'],
      ['x\r', 0, true, true, 'x\r\n'],
      ['\n.a\r.', 1, true, true, '..a\r\n..'],
      ['\r\n.', 1, true, false, '\r\n..'],
    ])('encodes %j from %d (dotStuff %s, atLineStart %s) as %j', (input, start, dotStuff, atLineStart, wire) => {
      expect(encodeSpan(bytes(input), start, dotStuff, atLineStart).toString('latin1')).toBe(wire);
    });

    it('returns the input itself, or its tail from start, when nothing changes', () => {
      const input = bytes('ab\r\n.c');
      expect(encodeSpan(input, 0, false, true)).toBe(input);
      const tail = encodeSpan(input, 2, false, true);
      expect(tail.toString('latin1')).toBe('\r\n.c');
      expect(tail.buffer).toBe(input.buffer);
      expect(tail.byteOffset).toBe(input.byteOffset + 2);
    });

    it('returns a new buffer of the exact length otherwise', () => {
      const input = bytes('a\nb');
      const out = encodeSpan(input, 0, true, true);
      expect(out.length).toBe(4);
      // Not a view of the input (both may sit in Buffer's shared pool, so compare the ranges).
      const overlap =
        out.buffer === input.buffer &&
        out.byteOffset < input.byteOffset + input.length &&
        input.byteOffset < out.byteOffset + out.length;
      expect(overlap).toBe(false);
      // A later call must not change an earlier result (the JS version reuses a scratch buffer).
      encodeSpan(bytes('x\ry\rz'), 0, true, true);
      expect(out.toString('latin1')).toBe('a\r\nb');
    });
  });

  describe('in a Node.js without WebAssembly (built package, child process)', () => {
    // The built package (npm test builds it first), encoding a small body and a large random one.
    const root = path.join(__dirname, '../..');
    const script = `
      const { createHash } = require('node:crypto');
      const { BodyEncoder } = require('rx-smtp');
      const { ENCODER_IMPLEMENTATION } = require('./dist/cjs/wire/encoder-kernel.js');
      const encode = (chunks) => {
        const encoder = new BodyEncoder();
        return Buffer.concat([...chunks.map((c) => encoder.push(c)), encoder.end()]);
      };
      const big = Buffer.alloc(300 * 1024);
      let seed = 1;
      for (let i = 0; i < big.length; i++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        big[i] = '..\\r\\nabcdefgh\\xc3'.charCodeAt((seed >>> 16) % 13);
      }
      const chunks = [big.subarray(0, 1000), big.subarray(1000, 1001), big.subarray(1001)];
      console.log(JSON.stringify({
        implementation: ENCODER_IMPLEMENTATION,
        webAssembly: typeof WebAssembly,
        small: encode([Buffer.from('a\\n.b\\r\\nc')]).toString('latin1'),
        big: createHash('sha256').update(encode(chunks)).digest('hex'),
      }));
    `;
    type Result = { implementation: string; webAssembly: string; small: string; big: string };
    const run = (flags: string[]): Result => {
      const stdout = execFileSync(process.execPath, [...flags, '-e', script], {
        cwd: root,
        encoding: 'utf8',
        // --jitless warns on stderr that it turns off --expose-wasm: keep it out of the test output.
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return JSON.parse(stdout) as Result;
    };
    let normal: Result;
    beforeAll(() => {
      normal = run([]);
    });

    it('uses wasm without flags', () => {
      expect(normal).toMatchObject({ implementation: 'wasm', webAssembly: 'object', small: 'a\r\n..b\r\nc\r\n.\r\n' });
    });

    it.each([['--jitless'], ['--no-expose-wasm']])('loads and encodes the same bytes with %s, on JS', (flag) => {
      expect(run([flag])).toEqual({ ...normal, implementation: 'js', webAssembly: 'undefined' });
    });
  });
});
