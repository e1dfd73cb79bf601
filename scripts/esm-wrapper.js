#!/usr/bin/env node
// Writes, for each entry point (`rx-smtp` and `rx-smtp/queue`), an ES module that re-exports the
// CommonJS build by name (dist/esm/index.mjs, dist/esm/queue/index.mjs), so `import { SMTP } from
// 'rx-smtp'` and `require('rx-smtp')` share one copy of every class (no dual-package hazard:
// `instanceof` and module state agree across both, and rx-smtp/queue's SMTPPool is rx-smtp's).
// Its default export is the whole namespace, so `import rx from 'rx-smtp'` works too.
//
// Writes an index.d.mts beside each: the typings of that module. The CommonJS `index.d.ts` cannot
// serve the `import` condition: under node16/nodenext TypeScript would read it as CommonJS and
// type `import rx from 'rx-smtp'` as a default import of `module.exports`, whatever the ES module
// really exports.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
/** Each entry point, as its folder under dist/cjs and dist/esm ('' for the package's root). */
const ENTRIES = ['', 'queue'];

for (const entry of ENTRIES) {
  const cjs = path.join(root, 'dist/cjs', entry, 'index.js');
  const names = Object.keys(require(cjs)).filter((n) => n !== '__esModule' && n !== 'default');
  const out = path.join(root, 'dist/esm', entry);
  const target = path.relative(out, cjs).split(path.sep).join('/');
  fs.mkdirSync(out, { recursive: true });
  const named = names.map((n) => `  ${n},\n`).join('');
  fs.writeFileSync(
    path.join(out, 'index.mjs'),
    `import cjs from '${target}';\nexport const {\n${named}} = cjs;\nexport default cjs;\n`,
  );
  fs.writeFileSync(
    path.join(out, 'index.d.mts'),
    `export * from '${target}';\nimport * as rx from '${target}';\nexport default rx;\n`,
  );
  const file = path.relative(root, path.join(out, 'index.mjs'));
  console.log(`${file}, index.d.mts: ${names.length} exports and the namespace as default`);
}
