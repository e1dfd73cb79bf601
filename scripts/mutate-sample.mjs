/**
 * `npm run mutate:sample`: the mutation score of `npm run mutate`'s three layers (lib/wire,
 * lib/transport, lib/session; the decision files are small enough to run whole), estimated from a
 * seeded random sample of their mutants, when the full run does not fit the time at hand (on 2 cores
 * the full scope is ~3,500 mutants at 5-20 a minute: most mutants of lib/wire and lib/transport are
 * reached by 400+ loopback tests, and Jest cannot stop at the first failure when run by Stryker).
 *
 *   npm run mutate:sample [-- --fraction 0.1 --seed 1]   all three steps below
 *   node scripts/mutate-sample.mjs --draw [--fraction 0.1] [--seed 1]   lists the mutants of
 *       lib/wire, lib/transport and lib/session (Stryker's own instrumenter), draws the same share of
 *       every file, writes build/stryker/sample.config.cjs
 *   npx stryker run build/stryker/sample.config.cjs   tests them (incremental; the ignorer in
 *       scripts/mutate-sample-ignorer.mjs keeps a drawn block from bringing in every mutant inside it)
 *   node scripts/mutate-sample.mjs --report   the score per layer, with a 95 % Wilson interval,
 *       counted on the drawn mutants only (other mutators on a drawn node, and the nodes between
 *       nested drawn ranges, run too, and are left out)
 *
 * Each file is drawn with its own generator (seed and file name), so a change to one file leaves the
 * others' draws alone. The interval covers the sampling only: a timeout on a loaded machine counts as
 * detected, as in Stryker's own score. After killing a draw's survivors, estimate again with a fresh
 * seed: the fixed draw is no longer a random sample of what the specs miss.
 *
 * Same seed, same fraction, same code: the same mutants. It estimates the full run; it does not
 * replace it (the full run's per-part commands are in the README).
 */
import { readFileSync, writeFileSync, mkdirSync, existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Instrumenter } from '@stryker-mutator/instrumenter';
import { ROOT, scope } from './mutate-scope.mjs';

const OUT = path.join(ROOT, 'build', 'stryker');
const DRAWN = path.join(OUT, 'sample-mutants.json');
const REPORT = path.join(OUT, 'sample-report.json');

const argv = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};

/** mulberry32: a small seeded generator, so a sample can be drawn again. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, 32 bits: a file's own seed. */
function fnv1a(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

const quiet = new Proxy({}, { get: (_, name) => (String(name).startsWith('is') ? () => false : () => undefined) });

async function draw() {
  const fraction = Number(flag('fraction', '0.1'));
  const seed = Number(flag('seed', '1'));
  // The decision files (scram, outcome, envelope) are small enough to run whole: the sample is for the layers.
  const files = scope().filter((f) => /^lib\/(wire|transport|session)\//.test(f));
  const { mutants } = await new Instrumenter(quiet).instrument(
    files.map((name) => ({ name, mutate: true, content: readFileSync(path.join(ROOT, name), 'utf8') })),
    { plugins: null, excludedMutations: [], ignorers: [], noHeader: false },
  );
  const drawn = [];
  for (const file of files) {
    const next = random(seed ^ fnv1a(file));
    const own = mutants.filter((m) => m.fileName === file);
    for (let i = own.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [own[i], own[j]] = [own[j], own[i]];
    }
    drawn.push(...own.slice(0, Math.ceil(own.length * fraction)));
  }
  // Stryker's ranges: 1-based lines, 0-based columns, as the instrumenter's (0-based) lines + 1.
  const at = ({ start, end }) => `${start.line + 1}:${start.column}-${end.line + 1}:${end.column}`;
  const patterns = drawn.map((m) => `${m.fileName}:${at(m.location)}`);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(
    DRAWN,
    `${JSON.stringify(
      {
        seed,
        fraction,
        total: mutants.length,
        drawn: drawn.map(({ fileName, mutatorName, replacement, location }) => ({
          fileName,
          mutatorName,
          replacement,
          location,
        })),
      },
      null,
      1,
    )}\n`,
  );
  writeFileSync(
    path.join(OUT, 'sample.config.cjs'),
    `// Written by scripts/mutate-sample.mjs (seed ${seed}, fraction ${fraction}): ${drawn.length} of ${mutants.length} mutants.\n` +
      `const base = require('../../stryker.config.js');\n` +
      `module.exports = {\n  ...base,\n  mutate: ${JSON.stringify(patterns, null, 4).replace(/\n]$/, '\n  ]')},\n` +
      `  appendPlugins: ['./scripts/mutate-sample-ignorer.mjs'],\n` +
      `  ignorers: ['mutate-sample'],\n` +
      `  incrementalFile: 'build/stryker/sample-incremental.json',\n` +
      `  jsonReporter: { fileName: 'build/stryker/sample-report.json' },\n` +
      `  htmlReporter: { fileName: 'build/stryker/sample-report.html' },\n};\n`,
  );
  console.log(`${drawn.length} of ${mutants.length} mutants drawn (seed ${seed}, fraction ${fraction})`);
  console.log('tests: npx stryker run build/stryker/sample.config.cjs; score: node scripts/mutate-sample.mjs --report');
}

/** 95 % Wilson score interval of k detected out of n. */
function wilson(k, n) {
  if (n === 0) return [NaN, NaN];
  const z = 1.96;
  const p = k / n;
  const mid = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const half = (z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [mid - half, mid + half];
}

function report() {
  if (!existsSync(DRAWN) || !existsSync(REPORT)) throw new Error('draw and run first (see the comment at the top)');
  if (statSync(REPORT).mtimeMs < statSync(DRAWN).mtimeMs) {
    throw new Error(`${path.relative(ROOT, REPORT)} is older than the draw: run Stryker on the new draw first`);
  }
  const { drawn, seed, fraction, total } = JSON.parse(readFileSync(DRAWN, 'utf8'));
  const { files } = JSON.parse(readFileSync(REPORT, 'utf8'));
  // The report's locations are 1-based lines and columns.
  const key = (file, mutator, replacement, s, e) =>
    `${file}|${mutator}|${replacement}|${s.line}:${s.column}|${e.line}:${e.column}`;
  const status = new Map();
  for (const [file, { mutants }] of Object.entries(files)) {
    for (const m of mutants) {
      status.set(key(file, m.mutatorName, m.replacement, m.location.start, m.location.end), m);
    }
  }
  const plus1 = (p) => ({ line: p.line + 1, column: p.column + 1 });
  const groups = new Map();
  const survivors = [];
  let missing = 0;
  for (const d of drawn) {
    const m = status.get(key(d.fileName, d.mutatorName, d.replacement, plus1(d.location.start), plus1(d.location.end)));
    if (!m) {
      missing++;
      continue;
    }
    const layer =
      d.fileName.startsWith('lib/wire/') ||
      d.fileName.startsWith('lib/transport/') ||
      d.fileName.startsWith('lib/session/')
        ? d.fileName.split('/').slice(0, 2).join('/')
        : d.fileName;
    for (const g of [layer, 'three layers']) {
      const c = groups.get(g) ?? {
        Killed: 0,
        Timeout: 0,
        Survived: 0,
        NoCoverage: 0,
        CompileError: 0,
        RuntimeError: 0,
        Ignored: 0,
        other: 0,
      };
      c[m.status in c ? m.status : 'other']++;
      groups.set(g, c);
    }
    if (m.status === 'Survived' || m.status === 'NoCoverage') {
      survivors.push(
        `${d.fileName}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} → ${m.replacement} (${m.status})`,
      );
    }
  }
  console.log(
    `seed ${seed}, fraction ${fraction}: ${drawn.length} of ${total} mutants drawn, ${missing} not in the report`,
  );
  console.log(
    '| part | killed | timeout | survived | no coverage | compile error | runtime error | ignored | other | score | 95 % interval |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  // The layers, then the whole.
  for (const [g, c] of [...groups].sort(([a], [b]) => Number(a === 'three layers') - Number(b === 'three layers'))) {
    const detected = c.Killed + c.Timeout;
    const valid = detected + c.Survived + c.NoCoverage;
    const [lo, hi] = wilson(detected, valid);
    const pct = (x) => `${(100 * x).toFixed(1)} %`;
    console.log(
      `| ${g} | ${c.Killed} | ${c.Timeout} | ${c.Survived} | ${c.NoCoverage} | ${c.CompileError} | ${c.RuntimeError} | ${c.Ignored} | ${c.other} | ${valid ? pct(detected / valid) : '–'} | ${valid ? `${pct(lo)}–${pct(hi)}` : '–'} |`,
    );
  }
  console.log('(score: killed and timeout over those plus survived and no coverage, as Stryker counts it)');
  if (survivors.length) console.log(`\nsurvivors:\n${survivors.join('\n')}`);
  if (missing > 0) {
    console.error(`${missing} drawn mutants have no verdict in the report: it is not this draw's run`);
    process.exitCode = 1;
  }
}

if (argv.includes('--report')) report();
else if (argv.includes('--draw')) await draw();
else {
  await draw();
  const run = spawnSync('npx', ['stryker', 'run', path.join(OUT, 'sample.config.cjs')], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (run.status !== 0) process.exit(run.status ?? 1);
  report();
}
