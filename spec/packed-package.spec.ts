import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

// The package as npm would publish it (npm test builds dist/ first): `npm pack`, extracted into a
// throw-away project the way `npm install` lays it out, then used by small TypeScript consumers.
// Only the tarball counts here: a file that exists in the repository but not in the tarball is missing.

const run = promisify(execFile);
const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  main?: string;
  module?: string;
  types?: string;
  exports?: unknown;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  bin?: Record<string, string>;
};
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
const DEADLINE_MS = 60_000;
/** moduleResolution → the `module` setting that goes with it. */
const MODES: Record<string, string> = { node16: 'node16', nodenext: 'nodenext', bundler: 'preserve' };

let work: string;
let project: string;
let installed: string;
let packed: string[];

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-pack-'));
  const [report] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }),
  ) as { filename: string; files: { path: string }[] }[];
  packed = report!.files.map((f) => f.path).sort();
  project = path.join(work, 'consumer');
  installed = path.join(project, 'node_modules/rx-smtp');
  fs.mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(work, report!.filename), '-C', installed, '--strip-components=1']);
  // What `npm install` would bring along: the package's dependencies, its peer rxjs, and Node's types.
  const deps = [...Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies }), '@types/node'];
  for (const dep of deps) {
    fs.mkdirSync(path.dirname(path.join(project, 'node_modules', dep)), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules', dep), path.join(project, 'node_modules', dep), 'dir');
  }
}, DEADLINE_MS);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('the packed rx-smtp', () => {
  it('ships the rx-smtp command: its bin is in the tarball, starts with a shebang and runs', async () => {
    const bin = pkg.bin?.['rx-smtp'];
    expect(bin).toBeDefined();
    expect(packed).toContain(path.normalize(bin!));
    const file = path.join(installed, bin!);
    expect(fs.readFileSync(file, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const { stdout } = await run(process.execPath, [file, '--help'], { timeout: DEADLINE_MS });
    expect(stdout).toMatch(/^Usage: rx-smtp <command>/);
  });

  it('holds the build, README, LICENSE, CHANGELOG and package.json, nothing else', () => {
    const outside = packed.filter(
      (f) => !f.startsWith('dist/') && !['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json'].includes(f),
    );
    expect(outside).toEqual([]);
    expect(packed).toEqual(expect.arrayContaining(['LICENSE', 'CHANGELOG.md', 'README.md']));
    expect(packed.filter((f) => /(^|\/)(spec|build)\/|\.spec\./.test(f))).toEqual([]);
  });

  it('holds every file package.json points at, the typings of each condition included', () => {
    const targets = [pkg.main, pkg.module, pkg.types, ...leaves(pkg.exports)].map((f) => path.posix.normalize(f!));
    expect(targets).toEqual(expect.arrayContaining(['dist/esm/index.d.mts', 'dist/cjs/index.d.ts']));
    expect(targets.filter((f) => !packed.includes(f))).toEqual([]);
  });

  it('ships source maps whose every source is in the tarball or inlined', () => {
    const maps = packed.filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const unresolved = maps.flatMap((file) => {
      const map = JSON.parse(fs.readFileSync(path.join(installed, file), 'utf8')) as {
        sourceRoot?: string;
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      return map.sources
        .filter((source, i) => typeof map.sourcesContent?.[i] !== 'string' && !inTarball(file, map.sourceRoot, source))
        .map((source) => `${file}: ${source}`);
    });
    expect(unresolved).toEqual([]);
  });

  // Each resolution mode a consumer may compile with, the `module` that goes with it, and both import
  // styles: the ES module (.mts, resolved through the `import` condition) and CommonJS (.cts, `require`).
  // The typings must accept what runs and refuse what fails: a default import exists only in the ES build.
  it.each(Object.keys(MODES))(
    'type-checks and runs both import styles under moduleResolution %s',
    async (mode) => {
      const diagnostics = (await compileConsumers()).split('\n').filter((line) => line.startsWith(`${mode}/`));
      expect(diagnostics).toEqual([]);
      const output = async (file: string) =>
        (await run(process.execPath, [path.join(project, mode, 'out', file)], { timeout: DEADLINE_MS })).stdout.trim();
      expect(await output('esm.mjs')).toBe('ESM: default is the namespace true, SMTP function, port 25, reply 250');
      expect(await output('cjs.cjs')).toBe('CJS: SMTP function, port 25, reply 250, default undefined');
      expect(await output('queue-esm.mjs')).toBe(
        'ESM queue: MailQueue function, startWorker function, limiter 9/50, default is the namespace true',
      );
      expect(await output('queue-cjs.cjs')).toBe('CJS queue: MailQueue function, outcomes$ function, limiter 9/50');
    },
    DEADLINE_MS,
  );
});

let compiling: Promise<string> | undefined;

/**
 * Compiles one consumer per mode, all in one `tsc -b` (it parses the Node and lib typings once,
 * not once per mode), and returns tsc's diagnostics, one per line, paths relative to the project.
 */
function compileConsumers(): Promise<string> {
  compiling ??= (async () => {
    const dirs = Object.entries(MODES).map(([moduleResolution, module]) => {
      writeConsumer(path.join(project, moduleResolution), { module, moduleResolution });
      return moduleResolution;
    });
    const tscRun = run(process.execPath, [tsc, '-b', '--pretty', 'false', ...dirs], {
      cwd: project,
      timeout: DEADLINE_MS,
    });
    return tscRun.then(
      ({ stdout }) => stdout,
      (e: unknown) => {
        const { stdout, message } = e as { stdout?: string; message: string };
        return stdout || message;
      },
    );
  })();
  return compiling;
}

/** Every path in an `exports` map, whatever its nesting of conditions. */
function leaves(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports];
  return exports && typeof exports === 'object' ? Object.values(exports).flatMap(leaves) : [];
}

/** Whether a source map's `source` names a file that the tarball holds. */
function inTarball(mapFile: string, sourceRoot: string | undefined, source: string): boolean {
  const file = path.resolve(installed, path.dirname(mapFile), sourceRoot ?? '', source);
  return !path.relative(installed, file).startsWith('..') && fs.existsSync(file);
}

/** A consumer project: one ES module and one CommonJS file using rx-smtp, with its tsconfig. */
function writeConsumer(dir: string, options: { module: string; moduleResolution: string }): void {
  fs.mkdirSync(dir, { recursive: true });
  // skipLibCheck: the consumer's use of rx-smtp is what is checked, not Node's or RxJS's own typings.
  const compilerOptions = { ...options, target: 'ES2022', strict: true, skipLibCheck: true };
  const tsconfig = { compilerOptions: { ...compilerOptions, types: ['node'], outDir: 'out' }, include: ['*.?ts'] };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
  fs.writeFileSync(
    path.join(dir, 'esm.mts'),
    [
      "import rx, { SMTP, SMTP_PORT, type Reply } from 'rx-smtp';",
      "const reply: Reply = { code: 250, message: 'OK', lines: ['OK'] };",
      'console.log(`ESM: default is the namespace ${rx.SMTP === SMTP}, SMTP ${typeof SMTP}, ' +
        'port ${SMTP_PORT}, reply ${reply.code}`);',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(dir, 'cjs.cts'),
    [
      "import rx = require('rx-smtp');",
      "const reply: rx.Reply = { code: 250, message: 'OK', lines: ['OK'] };",
      '// @ts-expect-error: the CommonJS build has no default export, and its typings must say so',
      'const fallback: unknown = rx.default;',
      'console.log(`CJS: SMTP ${typeof rx.SMTP}, port ${rx.SMTP_PORT}, reply ${reply.code}, default ${fallback}`);',
    ].join('\n'),
  );
  // rx-smtp/queue: its types name the pool's (PoolConfig) and BullMQ's; nothing connects here.
  fs.writeFileSync(
    path.join(dir, 'queue-esm.mts'),
    [
      "import queue, { MailQueue, startWorker, limiterFor, type QueueMessage, type MailWorkerOptions } from 'rx-smtp/queue';",
      "const message: QueueMessage = { id: 'a1', from: 'a@example.test', to: 'b@example.test', body: { ref: '/spool/a1.eml' } };",
      "const options: MailWorkerOptions = { queue: 'mail', connection: { host: '127.0.0.1' }, pool: { host: 'mx.example.test' } };",
      'const { max, duration } = limiterFor({ messages: 200, perMs: 1000 });',
      'void message; void options;',
      'console.log(`ESM queue: MailQueue ${typeof MailQueue}, startWorker ${typeof startWorker}, limiter ${max}/${duration}, ' +
        'default is the namespace ${queue.MailQueue === MailQueue}`);',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(dir, 'queue-cjs.cts'),
    [
      "import q = require('rx-smtp/queue');",
      'const outcome: q.QueueOutcome | undefined = undefined;',
      'const { max, duration } = q.limiterFor({ messages: 200, perMs: 1000 });',
      'void outcome;',
      'console.log(`CJS queue: MailQueue ${typeof q.MailQueue}, outcomes$ ${typeof q.outcomes$}, limiter ${max}/${duration}`);',
    ].join('\n'),
  );
}
