#!/usr/bin/env node
// Writes dist/esm/index.mjs: an ES module that re-exports the CommonJS build by name,
// so `import { SMTP } from 'rx-smtp'` and `require('rx-smtp')` share one copy of every
// class (no dual-package hazard: `instanceof` and module state agree across both).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const names = Object.keys(require(path.join(root, 'dist/cjs/index.js'))).filter((n) => n !== '__esModule');
const out = path.join(root, 'dist/esm');
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(
  path.join(out, 'index.mjs'),
  `import cjs from '../cjs/index.js';\nexport const {\n${names.map((n) => `  ${n},`).join('\n')}\n} = cjs;\n`,
);
console.log(`dist/esm/index.mjs: ${names.length} exports`);
