/**
 * The `rx-smtp` command against the real servers: submission through Postfix with AUTH over
 * STARTTLS (checked by Dovecot), and LMTP straight to Dovecot. Runs the built command
 * (`npm run build` first: this suite has no pretest).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lines, runCli } from '../spec/cli/run-cli';
import { token } from './helpers/client';
import { OTHER, USER, env, passwordOf } from './helpers/env';
import { delivered, deliveredNow, maildirMessages } from './helpers/observe';

const submissionUrl = (password: string): string =>
  `smtp+starttls://${encodeURIComponent(USER)}:${encodeURIComponent(password)}@${env.host}:${env.postfix.submission}`;

describe('rx-smtp against Postfix and Dovecot', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-cli-mta-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('send: AUTH over STARTTLS from the URL, one line per recipient, delivered to the Maildir, exit 0', async () => {
    const id = token('cli-send');
    const result = await runCli(
      [
        'send',
        '-s',
        submissionUrl(passwordOf(USER)),
        '--ca',
        env.ca,
        '-f',
        USER,
        '-t',
        OTHER,
        '--subject',
        id,
        '--body',
        `Hello ${id}`,
      ],
      { deadlineMs: 30_000 },
    );
    expect(result.stderr).toBe('');
    expect(lines(result.stdout)).toEqual([
      expect.stringMatching(new RegExp(`^✓ ${OTHER} {2}250 `)),
      expect.stringMatching(/^sent: 250 /),
    ]);
    expect(result.code).toBe(0);
    await delivered(OTHER, id);
  });

  // The client tries each mechanism offered in turn (smtplib's rule) and Dovecot delays every failure: ~35 s.
  it('send: a wrong password exits 3 with one line, and the password appears nowhere', async () => {
    const id = token('cli-bad-auth');
    const result = await runCli(
      ['send', '-s', submissionUrl('Wr0ng-Pw'), '--ca', env.ca, '-f', USER, '-t', OTHER, '--subject', id, '--dialogue'],
      { deadlineMs: 90_000 },
    );
    expect(result.code).toBe(3);
    expect(lines(result.stderr).filter((l) => l.startsWith('rx-smtp:'))).toEqual([
      expect.stringContaining('ERR_SMTP_AUTHENTICATION'),
    ]);
    expect(result.stdout + result.stderr).not.toContain('Wr0ng-Pw');
    expect(deliveredNow(OTHER, id)).toEqual([]);
  }, 100_000);

  it('send over LMTP: a delivery line per accepted recipient, ✗ for an unknown one, exit 1', async () => {
    const id = token('cli-lmtp');
    const result = await runCli(
      [
        'send',
        '-s',
        `lmtp://${env.host}:${env.dovecot.lmtp}`,
        '--starttls',
        'never',
        '-f',
        'sender@client.test',
        '-t',
        USER,
        '-t',
        env.addresses.unknown,
        '--subject',
        id,
        '--body',
        id,
      ],
      { deadlineMs: 30_000 },
    );
    const out = lines(result.stdout);
    expect(out[0]).toMatch(new RegExp(`^✓ ${USER} {2}250 `));
    expect(out[1]).toMatch(new RegExp(`^✗ ${env.addresses.unknown} {2}550 `));
    expect(out[2]).toMatch(new RegExp(`^✓ ${USER} {2}delivered\\? 250 `));
    expect(result.code).toBe(1);
    await delivered(USER, id);
  });

  it('probe: TLS after STARTTLS and the AUTH mechanisms Dovecot offers through Postfix', async () => {
    const result = await runCli(
      ['probe', '-s', `smtp+starttls://${env.host}:${env.postfix.submission}`, '--ca', env.ca, '--json'],
      { deadlineMs: 30_000 },
    );
    expect(result.code).toBe(0);
    const [found] = lines(result.stdout).map(
      (l) => JSON.parse(l) as { tls: { protocol: string } | null; auth: string[] },
    );
    expect(found?.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(found?.auth).toEqual(expect.arrayContaining(['PLAIN', 'LOGIN']));
  });

  it('bulk: a batch through Postfix, one outcome per message, every message delivered once', async () => {
    const id = token('cli-bulk');
    const batch = path.join(dir, 'batch.jsonl');
    const outcomes = path.join(dir, 'outcomes.jsonl');
    fs.writeFileSync(
      batch,
      Array.from({ length: 10 }, (_, i) =>
        JSON.stringify({ id: `${id}-${i}`, from: USER, to: [OTHER], subject: `${id}-${i}`, text: `${id}-${i}` }),
      ).join('\n'),
    );
    const result = await runCli(
      [
        'bulk',
        '-s',
        submissionUrl(passwordOf(USER)),
        '--ca',
        env.ca,
        '-m',
        batch,
        '-o',
        outcomes,
        '--connections',
        '2',
      ],
      { deadlineMs: 60_000 },
    );
    expect(result.code).toBe(0);
    const done = lines(fs.readFileSync(outcomes, 'utf8'))
      .map((l) => JSON.parse(l) as { status: string })
      .filter((o) => o.status !== 'sending');
    expect(done.map((o) => o.status)).toEqual(Array(10).fill('sent'));
    for (let i = 0; i < 10; i++) await delivered(OTHER, `${id}-${i}`);
    const subjects = maildirMessages(OTHER)
      .map((m) => /^Subject: (\S+)\r?$/m.exec(m.toString())?.[1])
      .filter((s) => s?.startsWith(id));
    expect(subjects.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `${id}-${i}`).sort());
  });
});
