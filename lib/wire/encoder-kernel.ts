import { ENCODER_WASM } from './encoder-wasm';

// @types/node 20 does not declare the WebAssembly global (lib.dom does): just what is used here.
// It may also be missing at run time (`node --jitless`, runtimes that disable WebAssembly).
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: object };
};

/** What encoder.wat exports. */
interface Kernel {
  readonly memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  encode(input: number, end: number, out: number, dotStuff: number, atLineStart: number): number;
}

/** The contract of `encodeSpan`, which both implementations below fulfil. */
export type EncodeSpan = (input: Buffer, start: number, dotStuff: boolean, atLineStart: boolean) => Buffer;

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const PAGE = 64 * 1024;

/** The most input bytes one `encodeSpan` takes; the encoder splits bigger chunks. */
export const MAX_SPAN = 256 * 1024;

// Memory layout, fixed at load so no chunk ever grows it: the input and its sentinel CR at 0,
// the output from OUTPUT (see the contract of `encode` in encoder.wat for the slack).
const OUTPUT = MAX_SPAN + 64;
const MEMORY = OUTPUT + 2 * MAX_SPAN + 64;

/**
 * The WebAssembly SIMD kernel, or `undefined` where it cannot run: no WebAssembly global
 * (`node --jitless`), no SIMD support (compilation throws), or no memory to grow into.
 * Compiling and instantiating its 270 bytes synchronously takes well under a millisecond.
 */
function loadWasm(): EncodeSpan | undefined {
  // Node's types declare WebAssembly everywhere; `node --jitless` has none.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  if (typeof WebAssembly !== 'object' || WebAssembly === null) return undefined;
  let kernel: Kernel;
  try {
    kernel = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(ENCODER_WASM, 'base64')), {})
      .exports as Kernel;
    kernel.memory.grow(Math.ceil(MEMORY / PAGE) - kernel.memory.buffer.byteLength / PAGE);
  } catch {
    return undefined;
  }
  // Views taken after the grow, which detaches the previous buffer.
  const memory = new Uint8Array(kernel.memory.buffer);
  const memoryBuffer = Buffer.from(kernel.memory.buffer);
  return function encodeSpanWasm(input, start, dotStuff, atLineStart) {
    const n = input.length;
    memory.set(input);
    memory[n] = CR;
    const length = kernel.encode(start, n, OUTPUT, dotStuff ? 1 : 0, atLineStart ? 1 : 0);
    // The encoding only ever adds bytes, so an unchanged length is unchanged bytes.
    if (length === n - start) return start === 0 ? input : input.subarray(start);
    const out = Buffer.allocUnsafe(length);
    memoryBuffer.copy(out, 0, OUTPUT, OUTPUT + length);
    return out;
  };
}

/** Output scratch of `encodeSpanJs`, grown on demand (it only runs where wasm is missing). */
let scratch = Buffer.alloc(0);

/**
 * `encodeSpan` in plain JS: the fallback where the wasm kernel cannot load. It copies line by
 * line (a native `indexOf` and `copy` per line end) rather than byte by byte: without a JIT, as
 * under `--jitless`, an interpreted byte loop is several times slower.
 */
export const encodeSpanJs: EncodeSpan = (input, start, dotStuff, atLineStart) => {
  const n = input.length;
  // At most two output bytes per input byte, plus a dot stuffed at `start`.
  if (scratch.length < 2 * (n - start) + 1) scratch = Buffer.allocUnsafe(2 * (n - start) + 1);
  const out = scratch;
  let o = 0;
  let i = start;
  let lineStart = atLineStart;
  // The next CR and the next LF at or after `i` (-1: none left).
  let cr = input.indexOf(CR, i);
  let lf = input.indexOf(LF, i);
  for (;;) {
    if (cr !== -1 && cr < i) cr = input.indexOf(CR, i);
    if (lf !== -1 && lf < i) lf = input.indexOf(LF, i);
    const end = cr === -1 ? (lf === -1 ? n : lf) : lf === -1 ? cr : Math.min(cr, lf);
    if (lineStart && dotStuff && input[i] === DOT) out[o++] = DOT;
    o += input.copy(out, o, i, end);
    if (end === n) break;
    // CR, LF and CRLF all go out as CRLF; a CR at the end too (the caller drops the next LF).
    out[o++] = CR;
    out[o++] = LF;
    i = end + (input[end] === CR && end + 1 < n && input[end + 1] === LF ? 2 : 1);
    lineStart = true;
  }
  // As for the kernel: an unchanged length is unchanged bytes.
  if (o === n - start) return start === 0 ? input : input.subarray(start);
  const result = Buffer.allocUnsafe(o);
  out.copy(result, 0, 0, o);
  return result;
};

const encodeSpanWasm = loadWasm();

/** Both implementations, for specs and benchmarks; `wasm` is `undefined` where it cannot load. */
export const kernels: { readonly wasm: EncodeSpan | undefined; readonly js: EncodeSpan } = {
  wasm: encodeSpanWasm,
  js: encodeSpanJs,
};

/** Which implementation `encodeSpan` is. */
export const ENCODER_IMPLEMENTATION: 'wasm' | 'js' = encodeSpanWasm ? 'wasm' : 'js';

/**
 * Encodes `input[start..]` (`input.length <= MAX_SPAN`): every CR, LF and CRLF becomes CRLF
 * and, with `dotStuff`, a dot that starts a line is doubled, `atLineStart` telling whether
 * `input[start]` starts one. A CR at the end goes out as CRLF; dropping an LF after it is the
 * caller's business. Returns `input.subarray(start)` (`input` itself when `start` is 0) when
 * nothing changes, else a new buffer of the exact length.
 *
 * The WebAssembly SIMD kernel (encoder.wat) where it loads, else `encodeSpanJs`.
 */
export const encodeSpan: EncodeSpan = encodeSpanWasm ?? encodeSpanJs;
