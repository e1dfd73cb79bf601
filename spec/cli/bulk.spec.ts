import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';
import { CLI, lines, runCli } from './run-cli';

interface Outcome {
  id: string;
  status: string;
  attempts?: number;
  refused?: Record<string, string>;
  error?: string;
}

const refuse = (code: number, text: string): Error => Object.assign(new Error(text), { responseCode: code });

/** A batch of `n` messages; every tenth also goes to a refused recipient, message `m3` only to refused ones. */
function batchFile(dir: string, n: number): string {
  const file = path.join(dir, 'batch.jsonl');
  const line = (i: number): string =>
    JSON.stringify({
      id: `m${i}`,
      from: 'me@x.test',
      to: i === 3 ? ['nobody@x.test'] : i % 10 ? ['a@x.test'] : ['a@x.test', 'nobody@x.test'],
      subject: `m${i}`,
      text: `hello ${i}`,
    });
  fs.writeFileSync(file, Array.from({ length: n }, (_, i) => line(i)).join('\n') + '\n');
  return file;
}

const outcomesIn = (file: string): Outcome[] =>
  lines(fs.readFileSync(file, 'utf8')).map((l) => JSON.parse(l) as Outcome);
const terminal = (all: Outcome[]): Outcome[] => all.filter((o) => o.status !== 'sending');

describe('rx-smtp bulk', () => {
  let server: RealServer | undefined;
  let dir: string;
  /** Messages accepted by the server, per id (its Subject). */
  let accepted: Map<string, number>;
  let onAccepted: (count: number) => void;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-bulk-'));
    accepted = new Map();
    onAccepted = () => undefined;
    server = await startSmtpServer({
      hideSTARTTLS: true,
      onRcptTo: (address, _s, cb) =>
        address.address.startsWith('nobody') ? cb(refuse(550, '5.1.1 No such user')) : cb(),
      onData(stream, _session, callback) {
        let text = '';
        stream.on('data', (c: Buffer) => (text += c.toString()));
        stream.on('end', () => {
          const id = /^Subject: (\S+)/m.exec(text)?.[1] ?? '?';
          accepted.set(id, (accepted.get(id) ?? 0) + 1);
          callback();
          onAccepted([...accepted.values()].reduce((a, b) => a + b, 0));
        });
      },
    });
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const url = (): string => `smtp://127.0.0.1:${server!.port}`;

  it('writes one outcome per message (refused recipients included) and exits 1 when some were refused', async () => {
    const outcomes = path.join(dir, 'outcomes.jsonl');
    const result = await runCli(['bulk', '-s', url(), '-m', batchFile(dir, 30), '-o', outcomes, '--connections', '2']);
    expect(result.code).toBe(1);
    const done = terminal(outcomesIn(outcomes));
    expect(done.map((o) => o.id).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`).sort());
    expect(done.find((o) => o.id === 'm3')).toMatchObject({
      status: 'refused',
      attempts: 1,
      error: expect.stringContaining('ERR_SMTP_RECIPIENTS_REFUSED'),
    });
    expect(done.find((o) => o.id === 'm10')).toEqual({
      id: 'm10',
      status: 'sent',
      attempts: 1,
      refused: { 'nobody@x.test': '550 5.1.1 No such user' },
    });
    expect(done.find((o) => o.id === 'm1')).toEqual({ id: 'm1', status: 'sent', attempts: 1 });
    expect(accepted.size).toBe(29);
    // Not a terminal: plain progress lines, the last one with the final counts.
    expect(result.stderr).not.toContain('\r');
    expect(lines(result.stderr).pop()).toMatch(
      /^progress {2}30\/30 {2}\d+ msg\/s {2}ETA 0s {2}sent 29 {2}refused 1 {2}failed 0 {2}possibly-delivered 0 {2}rcpt-refused 3 {2}conn \d {2}throttle 0$/,
    );
  });

  it('writes outcomes to standard output without --outcomes; exit 0 when everything was accepted', async () => {
    const file = path.join(dir, 'ok.jsonl');
    fs.writeFileSync(
      file,
      '{"id":1,"from":"me@x.test","to":["a@x.test"],"text":"x"}\n{"id":"two","from":"me@x.test","to":["b@x.test"]}\n',
    );
    const result = await runCli(['bulk', '-s', url(), '-m', file]);
    expect(result.code).toBe(0);
    expect(
      terminal(lines(result.stdout).map((l) => JSON.parse(l) as Outcome))
        .map((o) => [o.id, o.status])
        .sort(),
    ).toEqual([
      ['1', 'sent'],
      ['two', 'sent'],
    ]);
  });

  it('resumes after being killed mid-run: no message is accepted twice, every message ends with one outcome', async () => {
    const outcomes = path.join(dir, 'outcomes.jsonl');
    const batch = batchFile(dir, 120);
    const args = ['bulk', '-s', url(), '-m', batch, '-o', outcomes, '--connections', '2'];
    // Killed on an event (the 40th message accepted), not after a delay.
    const first = await runCli(args, { started: (child) => (onAccepted = (n) => n === 40 && child.kill('SIGKILL')) });
    expect(first.code).toBeNull();
    onAccepted = () => undefined;
    const before = terminal(outcomesIn(outcomes)).length;
    expect(before).toBeLessThan(120);

    const second = await runCli(args);
    expect([1, 4]).toContain(second.code);
    expect(second.stderr).toMatch(/^resuming: \d+ of 120 messages already sent or possibly delivered: skipped/);
    expect([...accepted.values()].every((n) => n === 1)).toBe(true);
    const final = new Map(terminal(outcomesIn(outcomes)).map((o) => [o.id, o]));
    expect(final.size).toBe(120);
    for (const [id, outcome] of final) {
      // Sent means the server has it; the only ones it may have without a `sent` are those under way at the kill.
      if (outcome.status === 'sent') expect(accepted.get(id)).toBe(1);
      else if (id !== 'm3') expect(outcome).toMatchObject({ status: 'possibly-delivered', attempts: 0 });
    }
    // A third run sends nothing again: only m3 (refused, so not done) is tried once more.
    const third = await runCli(args);
    expect(third.stderr).toMatch(/^resuming: 119 of 120 /);
    expect([...accepted.values()].every((n) => n === 1)).toBe(true);
  });

  it('on SIGINT finishes the messages under way, so a rerun sends the rest and none twice', async () => {
    const outcomes = path.join(dir, 'outcomes.jsonl');
    const args = ['bulk', '-s', url(), '-m', batchFile(dir, 120), '-o', outcomes, '--connections', '2'];
    const first = await runCli(args, { started: (child) => (onAccepted = (n) => n === 20 && child.kill('SIGINT')) });
    onAccepted = () => undefined;
    expect(first.code).toBe(1);
    expect(lines(first.stderr).pop()).toMatch(/^interrupted: \d+ messages not sent; run again/);
    const journal = outcomesIn(outcomes);
    const handedOver = journal.filter((o) => o.status === 'sending').map((o) => o.id);
    // Every message handed over has its outcome: nothing is left for a rerun to guess about.
    expect(
      terminal(journal)
        .map((o) => o.id)
        .sort(),
    ).toEqual([...handedOver].sort());
    expect(handedOver.length).toBeLessThan(120);

    const second = await runCli(args);
    expect(second.code).toBe(1);
    const final = terminal(outcomesIn(outcomes));
    expect(final.filter((o) => o.status === 'possibly-delivered')).toEqual([]);
    expect(new Set(final.map((o) => o.id)).size).toBe(120);
    expect(accepted.size).toBe(119);
    expect([...accepted.values()].every((n) => n === 1)).toBe(true);
  });

  it('redraws one line in place on a terminal (\\r and erase-line)', async () => {
    const outcomes = path.join(dir, 'tty.jsonl');
    const cli = [process.execPath, CLI, 'bulk', '-s', url(), '-m', batchFile(dir, 40), '-o', outcomes]
      .map((a) => `'${a}'`)
      .join(' ');
    // Wide enough for the whole line (the display cuts it to the terminal's width).
    const command = `stty cols 200; ${cli}`;
    // util-linux `script` runs the command under a pseudo-terminal.
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (c: Buffer) => (text += c.toString()));
      const deadline = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`no exit: ${text}`));
      }, 15_000);
      child.on('close', () => {
        clearTimeout(deadline);
        resolve(text);
      });
    });
    const redraws = output.split('\r\x1b[K').slice(1);
    expect(redraws.length).toBeGreaterThanOrEqual(1);
    expect(redraws.pop()).toMatch(/^\[#{24}\] {2}40\/40 {2}\d+ msg\/s {2}ETA 0s {2}sent 39 {2}refused 1 /);
    // Between redraws nothing starts a new line: the display stays on one line.
    for (const r of redraws) expect(r).not.toContain('\n');
  });

  it.each([
    ['not json', /line 1: not JSON/],
    ['{"id":"a","from":"me@x.test","to":[]}', /line 1: "to" must be a non-empty array/],
    [
      '{"id":"a","from":"me@x.test","to":["x@x.test"]}\n{"id":"a","from":"me@x.test","to":["x@x.test"]}',
      /line 2: id "a" appears twice/,
    ],
  ])('refuses a bad batch %j with exit 2 and one line, sending nothing', async (text, message) => {
    const file = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(file, text);
    const result = await runCli(['bulk', '-s', url(), '-m', file]);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(message)]);
    expect(accepted.size).toBe(0);
  });

  it('exits 2 for an unreadable batch file, 3 when the server cannot be reached', async () => {
    const missing = await runCli(['bulk', '-s', url(), '-m', path.join(dir, 'none.jsonl')]);
    expect([missing.code, lines(missing.stderr)]).toEqual([
      2,
      [expect.stringMatching(/--messages .*none\.jsonl: ENOENT/)],
    ]);
    const port = server!.port;
    await server!.close();
    server = undefined;
    const unreachable = await runCli([
      'bulk',
      '-s',
      `smtp://127.0.0.1:${port}`,
      '-m',
      batchFile(dir, 3),
      '-o',
      path.join(dir, 'o.jsonl'),
    ]);
    expect(unreachable.code).toBe(3);
    expect(lines(unreachable.stderr).filter((l) => l.startsWith('rx-smtp:'))).toEqual([
      expect.stringContaining('ECONNREFUSED'),
    ]);
  });
});
