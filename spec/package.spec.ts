import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

// The built package (npm test builds it first) as its users load it, in a child process.
const root = path.join(__dirname, '..');
const node = (args: string[]): string => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim();

describe('the rx-smtp package', () => {
  it('loads with require()', () => {
    expect(node(['-e', "const m = require('rx-smtp'); console.log(typeof m.SMTP, typeof m.session$, m.SMTP_PORT)"])).toBe(
      'function function 25',
    );
  });

  it('loads with import, sharing the classes of the CommonJS build', () => {
    const script =
      "import { SMTP, SMTPException } from 'rx-smtp'; import { createRequire } from 'node:module';" +
      "const cjs = createRequire(import.meta.url)('rx-smtp'); console.log(SMTP === cjs.SMTP, typeof SMTPException);";
    expect(node(['--input-type=module', '-e', script])).toBe('true function');
  });
});
