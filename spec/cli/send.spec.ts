import { FakeServer } from '../helpers/fake-server';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';
import { testCa } from '../helpers/certs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lines, runCli } from './run-cli';
import { defined } from '../helpers/defined';

/** A refusal smtp-server understands. */
const refuse = (code: number, text: string): Error => Object.assign(new Error(text), { responseCode: code });

describe('rx-smtp send', () => {
  let real: RealServer | undefined;
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await real?.close();
    await fake?.close();
    real = fake = undefined;
  });

  async function refusingServer(): Promise<RealServer> {
    return (real = await startSmtpServer({
      hideSTARTTLS: true,
      onRcptTo: (address, _s, cb) =>
        address.address.startsWith('nobody') ? cb(refuse(550, '5.1.1 No such user')) : cb(),
    }));
  }

  it('prints one line per recipient (✓/✗, code, text) and the verdict; exit 1 when one was refused', async () => {
    const server = await refusingServer();
    const result = await runCli([
      'send',
      '-s',
      `smtp://127.0.0.1:${server.port}`,
      '-f',
      'me@x.test',
      '-t',
      'you@x.test',
      '--cc',
      'nobody@x.test',
      '--bcc',
      'hidden@x.test',
      '--subject',
      'Hi',
      '--header',
      'X-Test: 1',
      '--body',
      'Hello',
    ]);
    expect(lines(result.stdout)).toEqual([
      '✓ you@x.test  250 Accepted',
      '✗ nobody@x.test  550 5.1.1 No such user',
      '✓ hidden@x.test  250 Accepted',
      'sent: 250 OK: message queued (1 recipient refused)',
    ]);
    expect(result.code).toBe(1);
    const message = defined(server.messages[0], 'a message received');
    expect(message.to).toEqual(['you@x.test', 'hidden@x.test']);
    const text = message.body.toString();
    expect(text).toMatch(/^Subject: Hi\r$/m);
    expect(text).toMatch(/^X-Test: 1\r$/m);
    expect(text).not.toMatch(/hidden/);
    expect(text.endsWith('\r\n\r\nHello\r\n')).toBe(true);
  });

  it('exits 0 when every recipient was accepted', async () => {
    const server = await refusingServer();
    const result = await runCli([
      'send',
      '-s',
      `smtp://127.0.0.1:${server.port}`,
      '-f',
      'me@x.test',
      '-t',
      'you@x.test',
      '--body',
      'x',
    ]);
    expect([result.code, result.stderr]).toEqual([0, '']);
  });

  it('prints a recipient line as its reply arrives, before the next reply exists', async () => {
    // The second RCPT is never answered: the first line can only have been printed on its own reply.
    fake = await FakeServer.start({
      handlers: { RCPT: (line) => (line.includes('two@') ? { stall: true } : '250 2.1.5 Ok') },
    });
    const result = await runCli([
      'send',
      '-s',
      `smtp://127.0.0.1:${fake.port}`,
      '-f',
      'me@x.test',
      '-t',
      'one@x.test',
      '-t',
      'two@x.test',
      '--timeout',
      '2',
      '--body',
      'x',
    ]);
    expect(lines(result.stdout)).toEqual(['✓ one@x.test  250 2.1.5 Ok']);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^rx-smtp: .*\(ERR_SMTP_TIMEOUT\)$/)]);
    expect(result.code).toBe(1);
  });

  it("over LMTP prints each recipient's delivery after the body", async () => {
    real = await startSmtpServer({
      lmtp: true,
      onRcptTo: (address, _s, cb) =>
        address.address.startsWith('nobody') ? cb(refuse(550, '5.1.1 No such user')) : cb(),
    });
    const result = await runCli([
      'send',
      '-s',
      `lmtp://127.0.0.1:${real.port}`,
      '--starttls',
      'never',
      '-f',
      'me@x.test',
      '-t',
      'one@x.test',
      '-t',
      'nobody@x.test',
      '--body',
      'x',
    ]);
    expect(lines(result.stdout)).toEqual([
      '✓ one@x.test  250 Accepted',
      '✗ nobody@x.test  550 5.1.1 No such user',
      expect.stringMatching(/^✓ one@x\.test {2}delivered\? 250 /),
      expect.stringMatching(/^sent: 250 .*\(1 recipient refused\)$/),
    ]);
    expect(result.code).toBe(1);
  });

  it('--json prints every sendmail$ event as one JSON object with its type', async () => {
    const server = await refusingServer();
    const result = await runCli([
      'send',
      '-s',
      `smtp://127.0.0.1:${server.port}`,
      '-f',
      'me@x.test',
      '-t',
      'you@x.test',
      '-t',
      'nobody@x.test',
      '--body',
      'x',
      '--json',
    ]);
    const events = lines(result.stdout).map((l) => JSON.parse(l) as { type: string });
    expect(events.filter((e) => e.type !== 'progress')).toEqual([
      { type: 'recipient', recipient: 'you@x.test', accepted: true, reply: expect.objectContaining({ code: 250 }) },
      { type: 'recipient', recipient: 'nobody@x.test', accepted: false, reply: expect.objectContaining({ code: 550 }) },
      {
        type: 'sent',
        reply: expect.objectContaining({ code: 250 }),
        refused: { 'nobody@x.test': expect.objectContaining({ code: 550 }) },
      },
    ]);
    expect(result.code).toBe(1);
  });

  it('sends an .eml from standard input with sendMessage$ rules (recipients from its fields, Bcc removed)', async () => {
    const server = await refusingServer();
    const eml = 'From: me@x.test\r\nTo: you@x.test\r\nBcc: hidden@x.test\r\nSubject: eml\r\n\r\nbody\r\n';
    const result = await runCli(['send', '-s', `smtp://127.0.0.1:${server.port}`, '--eml', '-'], { input: eml });
    expect(result.code).toBe(0);
    expect(server.messages[0]?.to).toEqual(['you@x.test', 'hidden@x.test']);
    expect(server.messages[0]?.body.toString()).not.toMatch(/Bcc|hidden/);
  });

  it('exits 4 when the connection is lost after the final dot (possibly delivered)', async () => {
    fake = await FakeServer.start({ handlers: { '.': { close: true } } });
    const result = await runCli([
      'send',
      '-s',
      `smtp://127.0.0.1:${fake.port}`,
      '-f',
      'me@x.test',
      '-t',
      'you@x.test',
      '--body',
      'x',
    ]);
    expect(result.code).toBe(4);
    expect(lines(result.stderr)).toEqual([expect.stringContaining('ERR_SMTP_POSSIBLY_DELIVERED')]);
  });

  it('exits 3 when nothing listens', async () => {
    fake = await FakeServer.start();
    const port = fake.port;
    await fake.close();
    fake = undefined;
    const result = await runCli(['send', '-s', `smtp://127.0.0.1:${port}`, '-f', 'me@x.test', '-t', 'you@x.test']);
    expect(result.code).toBe(3);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^rx-smtp: .*ECONNREFUSED/)]);
  });

  it('exits 3 when AUTH fails, and never shows the password (URL, flag or environment)', async () => {
    real = await startSmtpServer({
      authOptional: false,
      onAuth: (_a, _s, cb) => cb(refuse(535, '5.7.8 Authentication failed')),
    });
    const base = ['send', '-f', 'me@x.test', '-t', 'you@x.test', '--ca', caFile(), '--dialogue'];
    const runs = await Promise.all([
      runCli([...base, '-s', `smtp+starttls://me:Sekr3tPw@localhost:${real.port}`]),
      runCli([...base, '-s', `smtp+starttls://localhost:${real.port}`, '--auth-user', 'me', '--auth-pass', 'Sekr3tPw']),
      runCli([...base, '-s', `smtp+starttls://localhost:${real.port}`, '--auth-user', 'me'], {
        env: { RX_SMTP_PASSWORD: 'Sekr3tPw' },
      }),
    ]);
    for (const result of runs) {
      expect(result.code).toBe(3);
      expect(result.stderr).toMatch(/AUTH/);
      expect(lines(result.stderr).filter((l) => l.startsWith('rx-smtp:'))).toEqual([
        expect.stringContaining('ERR_SMTP_AUTHENTICATION'),
      ]);
      const everything = result.stdout + result.stderr;
      for (const secret of [
        'Sekr3tPw',
        Buffer.from('\0me\0Sekr3tPw').toString('base64'),
        Buffer.from('Sekr3tPw').toString('base64'),
      ]) {
        expect(everything).not.toContain(secret);
      }
    }
  });

  describe('usage errors: exit 2 and one line, nothing sent', () => {
    it.each([
      [['send', '--bogus'], /^rx-smtp: Unknown option '--bogus'/],
      [
        ['send', '-s', 'smtp://u:Sekr3tPw@h/path', '-f', 'a@x.test', '-t', 'b@x.test'],
        /^rx-smtp: Invalid server URL "smtp:\/\/\*\*\*@h\/path": no path/,
      ],
      [['send', '-s', 'http://h', '-f', 'a@x.test', '-t', 'b@x.test'], /unknown scheme "http"/],
      [['send', '-s', 'smtp://h', '-f', 'a@x.test'], /^rx-smtp: --to is required$/],
      [['send', '-f', 'a@x.test', '-t', 'b@x.test'], /^rx-smtp: --server is required$/],
      [
        ['send', '-s', 'smtp://h', '-f', 'a@x.test', '-t', 'b@x.test', '--body-file', '/nonexistent/file'],
        /--body-file \/nonexistent\/file: ENOENT/,
      ],
      [
        ['send', '-s', 'smtp://h', '-f', 'a@x.test', '-t', 'b@x.test', '--starttls', 'maybe'],
        /--starttls must be one of/,
      ],
      [['send', '-s', 'smtp://h', '-f', 'a@x.test', '-t', 'b@x.test', '--subject', 'a\nBcc: x'], /line break/],
      [['frobnicate'], /unknown command "frobnicate"/],
    ])('%j', async (args, message) => {
      const result = await runCli(args);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toEqual([expect.stringMatching(message)]);
      expect(result.stderr).not.toContain('Sekr3tPw');
    });
  });

  it('--help shows usage with examples, exit 0', async () => {
    const result = await runCli(['send', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: rx-smtp send/);
    expect(result.stdout).toMatch(/Examples:\n {2}rx-smtp send /);
  });
});

let caPath: string | undefined;
/** The test CA as a file, for --ca. */
function caFile(): string {
  caPath ??= path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-cli-')), 'ca.pem');
  fs.writeFileSync(caPath, testCa);
  return caPath;
}
