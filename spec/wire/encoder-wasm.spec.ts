import { readFileSync } from 'node:fs';

// The generator is a plain Node script (it runs before any build), so it comes in untyped.
const { render, OUT } = require('../../scripts/build-wasm') as { render: () => Promise<string>; OUT: string };

describe('lib/wire/encoder-wasm.ts', () => {
  it('holds the bytes encoder.wat compiles to (run `npm run build:wasm` after editing it)', async () => {
    expect(readFileSync(OUT, 'utf8')).toBe(await render());
  });
});
