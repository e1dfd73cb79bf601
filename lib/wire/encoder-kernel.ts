import { ENCODER_WASM } from './encoder-wasm';

// @types/node 20 does not declare the WebAssembly global (lib.dom does): just what is used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: object };
};

/** What encoder.wat exports. */
interface Kernel {
  readonly memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  encode(input: number, end: number, out: number, dotStuff: number, atLineStart: number): number;
}

const CR = 0x0d;
const PAGE = 64 * 1024;

/** The most input bytes one `encodeSpan` takes; the encoder splits bigger chunks. */
export const MAX_SPAN = 256 * 1024;

// Memory layout, fixed at load so no chunk ever grows it: the input and its sentinel CR at 0,
// the output from OUTPUT (see the contract of `encode` in encoder.wat for the slack).
const OUTPUT = MAX_SPAN + 64;
const MEMORY = OUTPUT + 2 * MAX_SPAN + 64;

// Compiling and instantiating 300 bytes synchronously takes well under a millisecond.
const kernel = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(ENCODER_WASM, 'base64')), {})
  .exports as Kernel;
kernel.memory.grow(Math.ceil(MEMORY / PAGE) - kernel.memory.buffer.byteLength / PAGE);
// Views taken after the grow, which detaches the previous buffer.
const memory = new Uint8Array(kernel.memory.buffer);
const memoryBuffer = Buffer.from(kernel.memory.buffer);

/**
 * Encodes `input[start..]` (`input.length <= MAX_SPAN`): every CR, LF and CRLF becomes CRLF
 * and, with `dotStuff`, a dot that starts a line is doubled, `atLineStart` telling whether
 * `input[start]` starts one. A CR at the end goes out as CRLF; dropping an LF after it is the
 * caller's business. Returns `input.subarray(start)` when nothing changes, else a new buffer.
 */
export function encodeSpan(input: Buffer, start: number, dotStuff: boolean, atLineStart: boolean): Buffer {
  const n = input.length;
  memory.set(input);
  memory[n] = CR;
  const length = kernel.encode(start, n, OUTPUT, dotStuff ? 1 : 0, atLineStart ? 1 : 0);
  // The encoding only ever adds bytes, so an unchanged length is unchanged bytes.
  if (length === n - start) return start === 0 ? input : input.subarray(start);
  const out = Buffer.allocUnsafe(length);
  memoryBuffer.copy(out, 0, OUTPUT, OUTPUT + length);
  return out;
}
