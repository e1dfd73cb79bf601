/**
 * `npm run mutate:parts`: `npm run mutate`, one file at a time, so the full scope can be measured in
 * sittings shorter than its hours on 2 cores.
 *
 *   npm run mutate:parts                       every file of stryker.config.js's scope, in order
 *   npm run mutate:parts -- lib/auth/scram.ts lib/wire/reply.ts    just these
 *   npm run mutate:parts -- --deadline 00:40   start no file that cannot end by 00:40 (local time)
 *
 * Each file is one Stryker run with `--mutate <file>` against the same verdict file
 * (build/stryker/incremental.json). Stryker writes that file when a run ends and carries the verdicts
 * of files outside a run's scope forward, so an interrupted sitting loses only the file in progress,
 * and a file already measured (unchanged code, unchanged covering specs) costs only the dry run.
 * When every file has its verdicts, `npm run mutate` reuses them all and reports the whole scope.
 *
 * `--deadline` guesses a file's time from its mutant count (Stryker's instrumenter) at the rate of
 * the files already run in this sitting (15 s a mutant before the first), plus a minute of dry run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Instrumenter } from '@stryker-mutator/instrumenter';
import { ROOT, scope } from './mutate-scope.mjs';

const argv = process.argv.slice(2);
const at = argv.indexOf('--deadline');
const deadline = at >= 0 ? parseDeadline(argv.splice(at, 2)[1]) : undefined;
const files = argv.length > 0 ? argv : scope();

/** "HH:MM" today (tomorrow if already past), local time. */
function parseDeadline(text) {
  const match = /^(\d{1,2}):(\d{2})$/.exec(text ?? '');
  if (!match) throw new Error(`--deadline wants HH:MM, got ${text}`);
  const when = new Date();
  when.setHours(Number(match[1]), Number(match[2]), 0, 0);
  if (when.getTime() < Date.now()) when.setDate(when.getDate() + 1);
  return when.getTime();
}

const quiet = new Proxy({}, { get: (_, name) => (String(name).startsWith('is') ? () => false : () => undefined) });
async function mutantCount(file) {
  const instrumenter = new Instrumenter(quiet);
  const content = readFileSync(path.join(ROOT, file), 'utf8');
  const { mutants } = await instrumenter.instrument([{ name: file, content, mutate: true }], {
    plugins: null,
    excludedMutations: [],
    ignorers: [],
  });
  return mutants.length;
}

const DRY_RUN_MS = 60_000;
let msPerMutant = 15_000;
let spentMs = 0;
let ranMutants = 0;
const failed = [];
const skipped = [];
for (const file of files) {
  const count = await mutantCount(file);
  const guessMs = DRY_RUN_MS + count * msPerMutant;
  if (deadline !== undefined && Date.now() + guessMs > deadline) {
    console.log(
      `mutate:parts: skipping ${file} (${count} mutants, ~${Math.round(guessMs / 60_000)} min): past --deadline`,
    );
    skipped.push(file);
    continue;
  }
  console.log(`mutate:parts: ${file} (${count} mutants)`);
  const started = Date.now();
  const run = spawnSync('npx', ['stryker', 'run', '--mutate', file], { cwd: ROOT, stdio: 'inherit' });
  const took = Date.now() - started;
  if (run.status !== 0) failed.push(file);
  spentMs += Math.max(0, took - DRY_RUN_MS);
  ranMutants += count;
  msPerMutant = Math.max(1_000, spentMs / ranMutants);
  console.log(`mutate:parts: ${file} took ${Math.round(took / 1000)} s`);
}
if (skipped.length > 0) console.log(`mutate:parts: not run (past --deadline): ${skipped.join(' ')}`);
if (failed.length > 0) {
  console.error(`mutate:parts: Stryker failed on ${failed.join(', ')}`);
  process.exitCode = 1;
}
