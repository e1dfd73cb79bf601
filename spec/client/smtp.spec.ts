import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import {
  LMTP,
  LMTP_PORT,
  SMTP,
  SMTPConnectError,
  SMTPHeloError,
  SMTPNotSupportedError,
  SMTPServerDisconnected,
  SMTP_PORT,
  SMTP_SSL,
  SMTP_SSL_PORT,
  authLogin,
} from '../../lib';
import { selfSigned, server as cert, testCa } from '../helpers/certs';
import { FakeServer } from '../helpers/fake-server';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';

const run = <T>(o: import('rxjs').Observable<T>): Promise<T> => lastValueFrom(o);

describe('SMTP (smtplib surface)', () => {
  let fake: FakeServer | undefined;
  let real: RealServer | undefined;
  let smtp: SMTP | undefined;
  afterEach(async () => {
    smtp?.close();
    await fake?.close();
    await real?.close();
    fake = real = smtp = undefined;
  });

  async function connected(script: Parameters<typeof FakeServer.start>[0] = {}): Promise<SMTP> {
    fake = await FakeServer.start(script);
    smtp = new SMTP({ host: '127.0.0.1', port: fake.port, localHostname: 'client.test' });
    await run(smtp.connect$());
    return smtp;
  }

  it("exports smtplib's port constants", () => {
    expect([SMTP_PORT, SMTP_SSL_PORT, LMTP_PORT]).toEqual([25, 465, 2003]);
    expect([SMTP.defaultPort, SMTP_SSL.defaultPort, LMTP.defaultPort]).toEqual([25, 465, 2003]);
  });

  it('does no I/O in the constructor, nor before a method is subscribed', async () => {
    fake = await FakeServer.start();
    smtp = new SMTP({ host: '127.0.0.1', port: fake.port });
    smtp.connect$();
    await new Promise((r) => setImmediate(r));
    expect(fake.sessions).toHaveLength(0);
  });

  it('errors with SMTPServerDisconnected when a command comes before connect$', async () => {
    smtp = new SMTP();
    const err = await run(smtp.noop$()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect((err as Error).message).toBe('please run connect() first');
  });

  it('connect$ emits the greeting; connect$("host:port") splits the address', async () => {
    fake = await FakeServer.start({ greeting: '220 mx.test ready' });
    smtp = new SMTP();
    const greeting = await run(smtp.connect$(`127.0.0.1:${fake.port}`));
    expect(greeting).toMatchObject({ code: 220, message: 'mx.test ready' });
  });

  it('connect$ errors with SMTPConnectError on a 199 greeting', async () => {
    fake = await FakeServer.start({ greeting: '199 hold on' });
    smtp = new SMTP();
    const err = await run(smtp.connect$('127.0.0.1', fake.port)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPConnectError);
    expect(err).toMatchObject({ smtpCode: 199, smtpError: 'hold on' });
  });

  it('ehlo$ records ehloResp, doesEsmtp and esmtpFeatures; hasExtn is case-insensitive', async () => {
    const client = await connected({ extensions: ['PIPELINING', 'SIZE 42', 'AUTH=LOGIN', 'AUTH PLAIN'] });
    expect(client.ehloResp).toBeNull();
    const reply = await run(client.ehlo$());
    expect(reply.code).toBe(250);
    expect(client.doesEsmtp).toBe(true);
    expect(client.ehloResp).toBe('fake.test\nPIPELINING\nSIZE 42\nAUTH=LOGIN\nAUTH PLAIN');
    expect(client.esmtpFeatures).toEqual({ pipelining: '', size: '42', auth: ' LOGIN PLAIN' });
    expect(client.hasExtn('Size')).toBe(true);
    expect(client.hasExtn('starttls')).toBe(false);
  });

  it('ehlo$ returns a refusal as a reply; ehloOrHeloIfNeeded$ then falls back to HELO', async () => {
    const client = await connected({ handlers: { EHLO: '502 no ehlo' } });
    expect((await run(client.ehlo$('me.test'))).code).toBe(502);
    expect(client.doesEsmtp).toBe(false);
    // smtplib: a refused EHLO already counts as "greeted", so nothing more is sent.
    await run(client.ehloOrHeloIfNeeded$());
    expect(fake!.session.commands).toEqual(['EHLO me.test']);
    expect((await run(client.helo$())).code).toBe(250);
    expect(client.heloResp).toBe('fake.test');
  });

  it('ehloOrHeloIfNeeded$ errors with SMTPHeloError when both are refused', async () => {
    const client = await connected({ handlers: { EHLO: '500 no', HELO: '501 no either' } });
    await expect(run(client.ehloOrHeloIfNeeded$())).rejects.toBeInstanceOf(SMTPHeloError);
    expect(fake!.session.commands).toEqual(['EHLO client.test', 'HELO client.test']);
  });

  it('verify$ and expn$ send the address part only; help$ emits the text; noop$, rset$, docmd$', async () => {
    const client = await connected({ handlers: { XTEST: '250 extra' } });
    expect((await run(client.verify$('Some One <one@x.test>'))).code).toBe(252);
    expect((await run(client.expn$('list@x.test'))).code).toBe(502);
    expect(await run(client.help$())).toBe('2.0.0 fake help');
    expect((await run(client.noop$())).code).toBe(250);
    expect((await run(client.rset$())).code).toBe(250);
    expect((await run(client.docmd$('XTEST', 'a b'))).message).toBe('extra');
    expect(fake!.session.commands).toEqual([
      'VRFY one@x.test',
      'EXPN list@x.test',
      'HELP',
      'NOOP',
      'RSET',
      'XTEST a b',
    ]);
  });

  it('refuses CR/LF in a command argument before anything is written', async () => {
    const client = await connected();
    await expect(run(client.verify$('a@x.test\r\nRSET'))).rejects.toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
    await expect(run(client.noop$())).resolves.toMatchObject({ code: 250 });
    expect(fake!.session.commands).toEqual(['NOOP']);
  });

  it('starttls$ errors with SMTPNotSupportedError when not advertised, sending only EHLO', async () => {
    const client = await connected({ extensions: ['PIPELINING'] });
    await expect(run(client.starttls$())).rejects.toBeInstanceOf(SMTPNotSupportedError);
    expect(fake!.session.commands).toEqual(['EHLO client.test']);
  });

  it('starttls$ upgrades against smtp-server with the test CA and forgets the capabilities', async () => {
    real = await startSmtpServer();
    smtp = new SMTP({ host: 'localhost', port: real.port, tls: { ca: testCa } });
    await run(smtp.connect$());
    await run(smtp.ehlo$());
    expect(smtp.hasExtn('starttls')).toBe(true);
    expect((await run(smtp.starttls$())).code).toBe(220);
    expect(smtp.ehloResp).toBeNull();
    expect(smtp.esmtpFeatures).toEqual({});
    await run(smtp.ehlo$());
    expect(smtp.hasExtn('starttls')).toBe(false);
    expect(smtp.session?.connection.secure).toBe(true);
  });

  it('quit$ sends QUIT, forgets the capabilities and closes; later commands need connect$', async () => {
    const client = await connected();
    await run(client.ehlo$());
    expect((await run(client.quit$())).code).toBe(221);
    expect(client.ehloResp).toBeNull();
    expect(client.doesEsmtp).toBe(false);
    await fake!.closedSession();
    await expect(run(client.noop$())).rejects.toThrow('please run connect() first');
  });

  it('close() drops the connection without QUIT', async () => {
    const client = await connected();
    client.close();
    await fake!.closedSession();
    expect(fake!.session.commands).toEqual([]);
    await expect(run(client.noop$())).rejects.toBeInstanceOf(SMTPServerDisconnected);
  });

  it('reports a server that went away on the next command', async () => {
    const client = await connected({ handlers: { NOOP: { close: true } } });
    await expect(run(client.noop$())).rejects.toThrow('Connection unexpectedly closed');
  });

  it('login$ refuses plaintext unless allowPlaintextAuth; auth$ takes smtplib authobjects', async () => {
    const client = await connected({
      extensions: ['AUTH LOGIN'],
      handlers: { AUTH: '334 UGFzc3dvcmQ6', '*': '235 2.7.0 ok' },
    });
    await expect(run(client.login$('u', 'p'))).rejects.toMatchObject({ code: 'ERR_SMTP_INSECURE_AUTH' });
    expect((await run(client.login$('u', 'p', { allowPlaintextAuth: true }))).code).toBe(235);
    const relaxed = new SMTP({ host: '127.0.0.1', port: fake!.port, allowPlaintextAuth: true });
    await run(relaxed.connect$());
    expect((await run(relaxed.auth$('login', authLogin('u', 'p')))).code).toBe(235);
    relaxed.close();
    expect(fake!.sessions[1]?.commands).toEqual([
      `AUTH LOGIN ${Buffer.from('u').toString('base64')}`,
      Buffer.from('p').toString('base64'),
    ]);
  });

  it('sendmail$ greets first and streams the transaction events', async () => {
    const client = await connected({ handlers: { RCPT: (l) => (l.includes('no@') ? '550 5.1.1 no' : '250 ok') } });
    const events = await lastValueFrom(
      client.sendmail$('a@x.test', ['b@x.test', 'no@x.test'], 'Hi\n', ['X-TEST=1']).pipe(toArray()),
    );
    expect(events.map((e) => e.type)).toEqual(['recipient', 'recipient', 'progress', 'sent']);
    expect(fake!.session.commands.slice(0, 3)).toEqual([
      'EHLO client.test',
      'MAIL FROM:<a@x.test> SIZE=4 X-TEST=1',
      'RCPT TO:<b@x.test>',
    ]);
    expect(fake!.session.messages[0]?.toString()).toBe('Hi\r\n');
  });

  it('mail$, rcpt$ and data$ follow smtplib, options only to ESMTP servers', async () => {
    const client = await connected({ handlers: { EHLO: '500 no' } });
    await run(client.ehloOrHeloIfNeeded$());
    expect((await run(client.mail$('a@x.test', ['BODY=8BITMIME']))).code).toBe(250);
    expect((await run(client.rcpt$('b@x.test', ['NOTIFY=NEVER']))).code).toBe(250);
    expect((await run(client.data$('Subject: x\r\n\r\n.dot\r\n'))).code).toBe(250);
    expect(fake!.session.commands.slice(2)).toEqual(['MAIL FROM:<a@x.test>', 'RCPT TO:<b@x.test>', 'DATA']);
    expect(fake!.session.messages[0]?.toString()).toBe('Subject: x\r\n\r\n..dot\r\n');
  });

  it('data$ errors with SMTPDataError when DATA is refused', async () => {
    const client = await connected({ handlers: { DATA: '554 5.5.1 no valid recipients' } });
    await expect(run(client.data$('x'))).rejects.toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 554 });
  });

  it('debug$ shows wire events at level 1, adds timestamps at level 2, and nothing at 0', async () => {
    fake = await FakeServer.start();
    smtp = new SMTP({ host: '127.0.0.1', port: fake.port, localHostname: 'client.test', debugStream: null });
    const seen: import('../../lib').DebugMessage[] = [];
    smtp.debug$.subscribe((m) => seen.push(m));
    await run(smtp.connect$());
    expect(seen).toEqual([]);
    smtp.setDebuglevel(1);
    await run(smtp.noop$());
    expect(seen.map((m) => m.line)).toEqual(['send: "NOOP"', 'reply: "250 2.0.0 Ok"']);
    expect(seen[0]?.time).toBeUndefined();
    smtp.setDebuglevel(2);
    await run(smtp.noop$());
    expect(seen[2]?.time).toEqual(expect.any(Number));
    expect(seen[2]?.line).toMatch(/^\d{4}-\d\d-\d\dT.* send: "NOOP"$/);
  });

  it('setDebuglevel prints the dialogue to debugStream, one line per event, AUTH redacted', async () => {
    fake = await FakeServer.start({ extensions: ['AUTH PLAIN'], handlers: { AUTH: '235 2.7.0 ok' } });
    const printed: string[] = [];
    const debugStream = { write: (line: string) => printed.push(line) };
    smtp = new SMTP({
      host: '127.0.0.1',
      port: fake.port,
      localHostname: 'client.test',
      allowPlaintextAuth: true,
      debugStream,
    });
    await run(smtp.connect$());
    expect(printed).toEqual([]);
    smtp.setDebuglevel(1);
    await run(smtp.noop$());
    expect(printed).toEqual(['send: "NOOP"\n', 'reply: "250 2.0.0 Ok"\n']);
    await run(smtp.login$('tim', 'hunter2'));
    const initial = Buffer.from('\0tim\0hunter2').toString('base64');
    expect(fake.session.commands).toContain(`AUTH PLAIN ${initial}`);
    expect(printed.join('')).toContain('send: "AUTH PLAIN');
    expect(printed.join('')).not.toMatch(new RegExp(`hunter2|${initial}`));
    smtp.setDebuglevel(2);
    await run(smtp.noop$());
    expect(printed.at(-1)).toMatch(/^\d{4}-\d\d-\d\dT\S+ reply: "250 2.0.0 Ok"\n$/);
  });

  it('prints to process.stderr by default', async () => {
    fake = await FakeServer.start();
    smtp = new SMTP({ host: '127.0.0.1', port: fake.port, localHostname: 'client.test' });
    await run(smtp.connect$());
    smtp.setDebuglevel(1);
    const printed = await capturingStderr(() => run(smtp!.noop$()));
    smtp.setDebuglevel(0);
    expect(printed).toEqual(['send: "NOOP"\n', 'reply: "250 2.0.0 Ok"\n']);
  });
});

/** What `work` wrote to the real `process.stderr` (its write method swapped for the duration). */
async function capturingStderr(work: () => Promise<unknown>): Promise<string[]> {
  const printed: string[] = [];
  // Put back as it was afterwards, never called detached.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = process.stderr.write;
  process.stderr.write = (chunk: string | Uint8Array) => printed.push(String(chunk)) > 0;
  try {
    await work();
  } finally {
    process.stderr.write = original;
  }
  return printed;
}

describe('SMTP_SSL', () => {
  let fake: FakeServer;
  afterEach(() => fake.close());

  it('fails against a self-signed certificate unless its CA is given', async () => {
    fake = await FakeServer.start({ implicitTls: true, tls: selfSigned });
    const strict = new SMTP_SSL({ host: 'localhost', port: fake.port });
    await expect(run(strict.connect$())).rejects.toMatchObject({ code: 'ERR_SMTP_TLS_CERTIFICATE' });
    const trusting = new SMTP_SSL({ host: 'localhost', port: fake.port, tls: { ca: selfSigned.cert } });
    expect((await run(trusting.connect$())).code).toBe(220);
    expect(trusting.session?.connection.secure).toBe(true);
    await run(trusting.quit$());
  });

  it('speaks TLS from the first byte with a CA-signed certificate', async () => {
    fake = await FakeServer.start({ implicitTls: true, tls: cert });
    const smtp = new SMTP_SSL({ tls: { ca: testCa } });
    await run(smtp.connect$('localhost', fake.port));
    expect((await run(smtp.ehlo$())).code).toBe(250);
    smtp.close();
  });
});

describe('LMTP', () => {
  let fake: FakeServer;
  afterEach(() => fake.close());

  it('greets with LHLO over a Unix socket', async () => {
    const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-')), 'lmtp.sock');
    fake = await FakeServer.start({ path: socketPath });
    const lmtp = new LMTP({ localHostname: 'client.test' });
    await run(lmtp.connect$(socketPath));
    expect((await run(lmtp.ehlo$())).code).toBe(250);
    expect(fake.session.commands).toEqual(['LHLO client.test']);
    await run(lmtp.quit$());
  });
});
