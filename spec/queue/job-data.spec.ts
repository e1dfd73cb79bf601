import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { backoffStrategy } from '../../lib/queue/backoff';
import { envelopeOf, noSpool, spoolDirectory, toJobData, toPoolMessage } from '../../lib/queue/job-data';
import { QueueOutcome, describeError, failureReason, outcomeFromReason } from '../../lib/queue/outcome';
import { SMTPInvalidArgumentError, SMTPRecipientsRefused } from '../../lib/errors';

describe('job data', () => {
  const base = {
    from: 'a@example.test',
    to: ['b@example.test', { address: 'c@example.test', notify: ['FAILURE'] as const }],
  };

  it('keeps text as text, bytes as base64 and a reference as a reference, and gives them back to the pool', () => {
    const bytes = new Uint8Array([0x48, 0x69, 0xff, 0x0d, 0x0a]);
    const text = toJobData({ ...base, body: 'Hi\r\n', id: 'x1' });
    const binary = toJobData({ ...base, body: bytes.subarray(0, 5) });
    const ref = toJobData({ ...base, body: { ref: '/spool/1.eml' } });
    expect(JSON.parse(JSON.stringify([text.body, binary.body, ref.body]))).toEqual([
      { text: 'Hi\r\n' },
      { base64: 'SGn/DQo=' },
      { ref: '/spool/1.eml' },
    ]);
    expect(toPoolMessage(text, () => 'unused').body).toBe('Hi\r\n');
    expect(toPoolMessage(binary, () => 'unused').body).toEqual(Buffer.from(bytes));
    const resolved: string[] = [];
    const fresh = toPoolMessage(ref, (r) => (resolved.push(r), `body of ${r}`)).body as () => string;
    expect([fresh(), fresh()]).toEqual(['body of /spool/1.eml', 'body of /spool/1.eml']);
    expect(resolved).toHaveLength(2);
  });

  it('carries the envelope, its options and the id, and leaves the body out of the envelope', () => {
    const data = toJobData(
      { ...base, body: 'x', id: 'order-7', mailOptions: { envid: 'e1' }, rcptOptions: { notify: 'NEVER' } },
      60_000,
    );
    expect(data).toMatchObject({ id: 'order-7', maxBackoffMs: 60_000, mailOptions: { envid: 'e1' } });
    expect(envelopeOf(data)).toEqual({
      from: base.from,
      to: base.to,
      id: 'order-7',
      mailOptions: { envid: 'e1' },
      rcptOptions: { notify: 'NEVER' },
    });
  });

  it.each([
    ['a sender with CR LF', { ...base, from: 'a@x\r\nRCPT TO:<z@y>', body: 'x' }],
    ['a recipient without an address', { ...base, to: [{ notify: 'NEVER' }], body: 'x' }],
    ['an empty reference', { ...base, body: { ref: '' } }],
    ['a function for a body', { ...base, body: () => 'x' }],
    ['an empty id', { ...base, body: 'x', id: '' }],
    ['a message that is not an object', null],
  ])('refuses %s', (_what, message) => {
    expect(() => toJobData(message as never)).toThrow(expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }));
  });

  // The worker would refuse these before MAIL; the producer hears it when it adds the message, not from an outcome.
  it.each([
    ['MAIL options that are not an object', { mailOptions: 'SMTPUTF8' }, /mailOptions must be an object/],
    ['a MAIL parameter with a blank', { mailOptions: { params: ['X-A b'] } }, /Not an ESMTP parameter: "X-A b"/],
    ['a MAIL parameter with CR LF', { mailOptions: { params: ['X\r\nRSET'] } }, /ESMTP parameter/],
    ['MAIL parameters as one string', { mailOptions: { params: 'SMTPUTF8' } }, /mailOptions.params must be a list/],
    ['a MAIL parameter that is a number', { mailOptions: { params: [8] } }, /mailOptions.params must be a list/],
    ['an unknown BODY', { mailOptions: { body: 'QP' } }, /mailOptions.body must be one of 7BIT, 8BITMIME, BINARYMIME/],
    ['an unknown RET', { mailOptions: { ret: 'ALL' } }, /mailOptions.ret must be one of FULL, HDRS, got "ALL"/],
    ['an ENVID that is not text', { mailOptions: { envid: 7 } }, /mailOptions.envid must be a string/],
    ['RCPT options that are not an object', { rcptOptions: 'NOTIFY=NEVER' }, /rcptOptions must be an object/],
    ['an unknown NOTIFY', { rcptOptions: { notify: ['SOMETIMES'] } }, /Invalid NOTIFY value: "SOMETIMES"/],
    ['NEVER among others', { rcptOptions: { notify: ['NEVER', 'FAILURE'] } }, /Invalid NOTIFY value: "NEVER,FAILURE"/],
    ['a NOTIFY that is one string', { rcptOptions: { notify: 'FAILURE' } }, /notify must be 'NEVER' or a list/],
    ['an ORCPT with CR LF', { rcptOptions: { orcpt: 'b@x\r\nRSET' } }, /ORCPT/],
    ['an ORCPT that is not text', { rcptOptions: { orcpt: 1 } }, /rcptOptions: orcpt must be a string/],
    ['a RCPT parameter with a blank', { rcptOptions: { params: ['X=a b'] } }, /Not an ESMTP parameter: "X=a b"/],
    [
      "one recipient's bad parameter",
      { to: ['b@example.test', { address: 'c@example.test', params: ['=x'] }] },
      /Not an ESMTP parameter: "=x"/,
    ],
    [
      "one recipient's bad NOTIFY",
      { to: [{ address: 'c@example.test', notify: 'DELAY' }] },
      /the options of c@example.test: notify must be/,
    ],
  ])('refuses %s, with the reason', (_what, fields, reason) => {
    const message = { ...base, body: 'x', ...fields };
    let thrown: unknown;
    try {
      toJobData(message as never);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(SMTPInvalidArgumentError);
    expect((thrown as Error).message).toMatch(reason);
  });

  it('takes every MAIL and RCPT option the session sends, in either form', () => {
    const message = {
      ...base,
      to: [{ address: 'c@example.test', notify: ['SUCCESS', 'FAILURE'] as const, orcpt: 'c@example.test' }],
      body: 'x',
      mailOptions: { params: ['X-TAG=7'], body: '8BITMIME', ret: 'HDRS', envid: 'e 1', requireTls: false },
      rcptOptions: { notify: 'NEVER', params: ['XFOO'] },
    } as const;
    expect(toJobData(message)).toMatchObject({ mailOptions: message.mailOptions, rcptOptions: message.rcptOptions });
    // smtplib's list form reaches the worker as it came (the session reads both forms).
    const listed = toJobData({ ...message, mailOptions: ['SMTPUTF8'], rcptOptions: ['NOTIFY=NEVER'] } as never);
    expect(listed).toMatchObject({ mailOptions: ['SMTPUTF8'], rcptOptions: ['NOTIFY=NEVER'] });
  });
});

describe('spoolDirectory: where a { ref } body may come from', () => {
  let top: string;
  let spool: string;
  beforeAll(() => {
    top = fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-spool-'));
    spool = path.join(top, 'spool');
    fs.mkdirSync(path.join(spool, 'day'), { recursive: true });
    fs.writeFileSync(path.join(spool, 'day', 'a.eml'), 'Subject: a\r\n\r\nfrom the spool\r\n');
    fs.writeFileSync(path.join(top, 'secret.txt'), 'not for mail');
    fs.symlinkSync(path.join(top, 'secret.txt'), path.join(spool, 'link-out.eml'));
    fs.symlinkSync(path.join(spool, 'day', 'a.eml'), path.join(spool, 'link-in.eml'));
    fs.linkSync(path.join(top, 'secret.txt'), path.join(spool, 'hard-link.eml'));
    execFileSync('mkfifo', [path.join(spool, 'fifo.eml')]);
  });
  afterAll(() => fs.rmSync(top, { recursive: true, force: true }));

  async function read(body: unknown): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of body as Readable) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString();
  }

  it.each([
    ['a path relative to it', 'day/a.eml'],
    ['an absolute path inside it', () => path.join(spool, 'day', 'a.eml')],
    ['a symbolic link that stays inside it', 'link-in.eml'],
  ])('streams %s', async (_what, ref) => {
    const resolve = spoolDirectory(spool);
    await expect(read(resolve(typeof ref === 'function' ? ref() : ref))).resolves.toBe(
      'Subject: a\r\n\r\nfrom the spool\r\n',
    );
  });

  it.each([
    ['a climb out with ..', '../secret.txt'],
    ['an absolute path elsewhere', () => path.join(top, 'secret.txt')],
    ['a symbolic link out of it', 'link-out.eml'],
    ['the directory itself', '.'],
    ['a directory inside it', 'day'],
    ['a FIFO inside it (without waiting for a writer)', 'fifo.eml'],
    ['a hard link to a file elsewhere', 'hard-link.eml'],
    ['a NUL in the name', 'day/a.eml\0.txt'],
    ['a path elsewhere that does not exist, without saying so', '../../no/such/file'],
  ])('refuses %s before reading anything', (_what, ref) => {
    const resolve = spoolDirectory(spool);
    expect(() => resolve(typeof ref === 'function' ? ref() : ref)).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT', message: expect.stringContaining('spool') }),
    );
  });

  it('fails a file that is not there with ENOENT', () => {
    expect(() => spoolDirectory(spool)('day/gone.eml')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it.each([
    ['an empty path', () => ''],
    ['a directory that does not exist', () => path.join(top, 'missing')],
    ['a file', () => path.join(top, 'secret.txt')],
    ['the root', () => '/'],
  ])('refuses %s as the spool directory, naming spoolDir', (_what, dir) => {
    expect(() => spoolDirectory(dir())).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT', message: expect.stringContaining('spoolDir') }),
    );
  });

  it('reads no file at all without a spool directory', () => {
    expect(() => noSpool(path.join(spool, 'day', 'a.eml'))).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT', message: expect.stringContaining('spoolDir') }),
    );
  });
});

describe('backoffStrategy', () => {
  const job = (delay: number, maxBackoffMs?: number) =>
    ({ opts: { backoff: { type: 'rx-smtp', delay } }, data: { maxBackoffMs } }) as never;

  it('doubles the delay from one retry to the next, up to maxBackoffMs', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffStrategy(n, 'rx-smtp', undefined, job(1000, 5000)))).toEqual([
      1000, 2000, 4000, 5000, 5000,
    ]);
    expect(backoffStrategy(6, 'rx-smtp', undefined, job(1000))).toBe(32_000);
  });

  it('does not answer for a backoff type that is not its own', () => {
    expect(backoffStrategy(1, 'custom', undefined, job(1000))).toBe(-1);
  });
});

describe('failureReason', () => {
  const outcome: QueueOutcome = {
    status: 'refused',
    jobId: 'j1',
    message: { from: 'a@example.test', to: 'b@example.test', id: 'j1' },
    error: describeError(
      new SMTPRecipientsRefused({
        'b@example.test': { code: 550, message: 'no\nsuch user', lines: ['no', 'such user'] },
      }),
    ),
    attempts: 1,
  };

  it('is one line for people, then the outcome for outcomes$', () => {
    const reason = failureReason(outcome);
    expect(reason.split('\n')[0]).toBe(
      'refused: All recipients were refused: b@example.test [ERR_SMTP_RECIPIENTS_REFUSED]',
    );
    expect(outcomeFromReason(reason)).toEqual(outcome);
  });

  it('keeps the first line one line, whatever the error text', () => {
    const multi = { ...outcome, error: { message: 'a\r\nb' } };
    expect(failureReason(multi).split('\n')[0]).toBe('refused: a b');
    expect(outcomeFromReason(failureReason(multi))).toEqual(multi);
  });

  it("is not mistaken for BullMQ's own reasons", () => {
    expect(outcomeFromReason('job stalled more than allowable limit')).toBeUndefined();
    expect(outcomeFromReason('x\nnot json')).toBeUndefined();
    expect(outcomeFromReason('x\n{broken')).toBeUndefined();
  });

  it('describes an error by its code, text and reply, never its stack', () => {
    const described = describeError(
      Object.assign(new Error('boom'), { code: 'ERR_SMTP_DATA', smtpCode: 451, stack: 'secret stack' }),
    );
    expect(described).toEqual({ code: 'ERR_SMTP_DATA', name: 'Error', message: 'boom', smtpCode: 451 });
    expect(describeError('plain')).toEqual({ message: 'plain' });
  });
});
