#!/usr/bin/env node
// Writes dist/esm/index.mjs: an ES module that re-exports the CommonJS build by name,
// so `import { SMTP } from 'rx-smtp'` and `require('rx-smtp')` share one copy of every
// class (no dual-package hazard: `instanceof` and module state agree across both).
// Its default export is the whole namespace, so `import rx from 'rx-smtp'` works too.
//
// Writes dist/esm/index.d.mts beside it: the typings of that module. The CommonJS
// `index.d.ts` cannot serve the `import` condition: under node16/nodenext TypeScript would
// read it as CommonJS and type `import rx from 'rx-smtp'` as a default import of
// `module.exports`, whatever the ES module really exports.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const names = Object.keys(require(path.join(root, 'dist/cjs/index.js'))).filter(
  (n) => n !== '__esModule' && n !== 'default',
);
const out = path.join(root, 'dist/esm');
fs.mkdirSync(out, { recursive: true });
const named = names.map((n) => `  ${n},\n`).join('');
fs.writeFileSync(
  path.join(out, 'index.mjs'),
  `import cjs from '../cjs/index.js';\nexport const {\n${named}} = cjs;\nexport default cjs;\n`,
);
fs.writeFileSync(
  path.join(out, 'index.d.mts'),
  `export * from '../cjs/index.js';\nimport * as rx from '../cjs/index.js';\nexport default rx;\n`,
);
console.log(`dist/esm/index.mjs, index.d.mts: ${names.length} exports and the namespace as default`);
