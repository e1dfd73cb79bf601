import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

// The built package (npm test builds it first) as its users load it, in a child process.
const root = path.join(__dirname, '..');
const node = (args: string[]): string => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim();

describe('the rx-smtp package', () => {
  it('loads with require()', () => {
    expect(
      node(['-e', "const m = require('rx-smtp'); console.log(typeof m.SMTP, typeof m.session$, m.SMTP_PORT)"]),
    ).toBe('function function 25');
  });

  it('loads with import, sharing the classes of the CommonJS build', () => {
    const script =
      "import { SMTP, SMTPException } from 'rx-smtp'; import { createRequire } from 'node:module';" +
      "const cjs = createRequire(import.meta.url)('rx-smtp'); console.log(SMTP === cjs.SMTP, typeof SMTPException);";
    expect(node(['--input-type=module', '-e', script])).toBe('true function');
  });

  it('loads rx-smtp/queue in both styles, sharing the classes of the CommonJS build and its pool', () => {
    const script =
      "import { MailQueue, startWorker } from 'rx-smtp/queue'; import { createRequire } from 'node:module';" +
      "const r = createRequire(import.meta.url); console.log(typeof startWorker, MailQueue === r('rx-smtp/queue').MailQueue," +
      " r.resolve('rx-smtp/queue').includes('/dist/cjs/queue/'));";
    expect(node(['--input-type=module', '-e', script])).toBe('function true true');
  });

  it('loads without bullmq and ioredis: only rx-smtp/queue needs them', () => {
    // As if they were not installed: resolving either fails, as it would in a project without them.
    const hide =
      "const M = require('node:module'); const resolve = M._resolveFilename;" +
      'M._resolveFilename = function (request, ...rest) {' +
      "  if (/^(bullmq|ioredis)(\\/|$)/.test(request)) throw Object.assign(new Error('Cannot find module ' + request), { code: 'MODULE_NOT_FOUND' });" +
      '  return resolve.call(this, request, ...rest); };';
    const script =
      `${hide} const rx = require('rx-smtp'); let queue = 'loaded'; try { require('rx-smtp/queue'); } catch (e) { queue = e.code; }` +
      ' console.log(typeof rx.SMTPPool, queue, Object.keys(require.cache).some((f) => /node_modules[\\/](bullmq|ioredis)[\\/]/.test(f)));';
    expect(node(['-e', script])).toBe('function MODULE_NOT_FOUND false');
    const esm =
      "import * as rx from 'rx-smtp'; import { createRequire } from 'node:module'; const cache = createRequire(import.meta.url).cache;" +
      ' console.log(typeof rx.SMTP, Object.keys(cache).some((f) => /node_modules[\\/](bullmq|ioredis)[\\/]/.test(f)));';
    expect(node(['--input-type=module', '-e', esm])).toBe('function false');
  });
});
