/**
 * The Stryker ignorer of `npm run mutate:sample` (scripts/mutate-sample.mjs): a node keeps its
 * mutants only when a drawn mutant sits on it or inside it, so a drawn block (`{}`) does not bring
 * every mutant nested in it into the run. Mutants of a kept ancestor that were not drawn still run;
 * the report counts the drawn ones only.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PluginKind, declareValuePlugin } from '@stryker-mutator/api/plugin';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { drawn } = JSON.parse(readFileSync(path.join(ROOT, 'build', 'stryker', 'sample-mutants.json'), 'utf8'));
/** Per file, the drawn mutants' nodes in Babel's terms (1-based lines, 0-based columns). */
const byFile = new Map();
for (const { fileName, location: l } of drawn) {
  const list = byFile.get(fileName) ?? [];
  list.push({
    start: { line: l.start.line + 1, column: l.start.column },
    end: { line: l.end.line + 1, column: l.end.column },
  });
  byFile.set(fileName, list);
}
const before = (a, b) => a.line < b.line || (a.line === b.line && a.column <= b.column);
const holds = (outer, inner) => before(outer.start, inner.start) && before(inner.end, outer.end);

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'mutate-sample', {
    shouldIgnore(nodePath) {
      const loc = nodePath.node.loc;
      const file = nodePath.hub?.file?.opts?.filename;
      if (!loc || !file) return undefined;
      const ranges = byFile.get(path.relative(ROOT, path.resolve(ROOT, file)).split(path.sep).join('/'));
      if (!ranges) return 'not drawn by the sample';
      return ranges.some((r) => holds(loc, r)) ? undefined : 'not drawn by the sample';
    },
  }),
];
