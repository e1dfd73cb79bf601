/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time per function and per file,
 * and total (inclusive) time of the rx-smtp functions, so a hot path can be read without DevTools.
 *
 *   node build/bench/bench/profile-summary.js PROFILE.cpuprofile [TOP]
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
export interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const shortUrl = (url: string): string =>
  url
    .replace(/^file:\/\//, '')
    .replace(/.*\/node_modules\//, '')
    .replace(/.*\/build\/bench\//, '');
const label = (f: CallFrame): string =>
  `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`.trim();

/** Self and inclusive milliseconds per function, and self milliseconds per file. */
export function summarise(profile: Profile): {
  total: number;
  self: Map<string, number>;
  inclusive: Map<string, number>;
  files: Map<string, number>;
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfById = new Map<number, number>();
  profile.samples.forEach((id, i) => selfById.set(id, (selfById.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v);
  for (const [id, ms] of selfById) {
    total += ms;
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    add(self, label(frame), ms);
    add(files, frame.url ? shortUrl(frame.url) : `(${frame.functionName || 'native'})`, ms);
    // Inclusive: each distinct function on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur);
      if (!node) break;
      const key = label(node.callFrame);
      if (!seen.has(key)) add(inclusive, key, ms);
      seen.add(key);
    }
  }
  return { total, self, inclusive, files };
}

function top(m: Map<string, number>, n: number, total: number, filter: (k: string) => boolean = () => true): string {
  return [...m]
    .filter(([k]) => filter(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, ms]) => `  ${ms.toFixed(0).padStart(7)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n');
}

if (require.main === module) {
  const file = process.argv[2];
  const n = Number(process.argv[3] ?? 25);
  if (!file) throw new Error('usage: profile-summary.js PROFILE.cpuprofile [TOP]');
  const { total, self, inclusive, files } = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  console.log(`profile ${file}: ${total.toFixed(0)} ms sampled`);
  console.log(`self time by function (top ${n}):\n${top(self, n, total)}`);
  console.log(`self time by file (top ${n}):\n${top(files, n, total)}`);
  console.log(`inclusive time, rx-smtp functions (top ${n}):\n${top(inclusive, n, total, (k) => k.includes('lib/'))}`);
}
