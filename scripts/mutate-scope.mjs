/**
 * The files of stryker.config.js's `mutate` (`dir/**\/*.ts` globs, plain paths and `!` exclusions),
 * sorted: shared by `npm run mutate:sample` and `npm run mutate:parts`.
 */
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

export function scope() {
  const { mutate } = require(path.join(ROOT, 'stryker.config.js'));
  const walk = (dir) =>
    readdirSync(path.join(ROOT, dir)).flatMap((name) => {
      const rel = path.posix.join(dir, name);
      return statSync(path.join(ROOT, rel)).isDirectory() ? walk(rel) : rel.endsWith('.ts') ? [rel] : [];
    });
  const files = new Set();
  for (const pattern of mutate) {
    if (pattern.startsWith('!')) files.delete(pattern.slice(1));
    else if (pattern.endsWith('/**/*.ts')) walk(pattern.slice(0, -'/**/*.ts'.length)).forEach((f) => files.add(f));
    else files.add(pattern);
  }
  return [...files].sort();
}
