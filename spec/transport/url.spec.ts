import { lastValueFrom } from 'rxjs';
import { LMTP, SMTP, SMTPPool, SMTP_SSL, parseServerUrl, sendmail$, session$, withSession$ } from '../../lib';
import { testCa } from '../helpers/certs';
import { startSmtpServer } from '../helpers/smtp-server';

const errorOf = (url: string): { code?: string; message: string } => {
  try {
    parseServerUrl(url);
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error(`${url} parsed`);
};

describe('parseServerUrl', () => {
  it.each([
    ['smtp://mail.example.com', { host: 'mail.example.com', port: 25 }],
    ['smtp://mail.example.com:2525', { host: 'mail.example.com', port: 2525 }],
    ['smtp://mail.example.com/', { host: 'mail.example.com', port: 25 }],
    ['smtps://mail.example.com', { host: 'mail.example.com', port: 465, secure: true }],
    ['smtp+starttls://mail.example.com:587', { host: 'mail.example.com', port: 587, starttls: 'required' }],
    ['lmtp://127.0.0.1', { host: '127.0.0.1', port: 2003, lmtp: true }],
    ['lmtp+unix:///run/dovecot/lmtp', { path: '/run/dovecot/lmtp', lmtp: true }],
    ['smtp://[::1]:2525', { host: '::1', port: 2525 }],
    ['SMTPS://Mail.Example.COM', { host: 'Mail.Example.COM', port: 465, secure: true }],
  ])('%s', (url, expected) => {
    expect(parseServerUrl(url)).toEqual(expected);
  });

  it('percent-decodes user and password', () => {
    expect(parseServerUrl('smtps://me%40example.com:p%3Aw%2Fd%25@h').auth).toEqual({
      user: 'me@example.com',
      password: 'p:w/d%',
    });
    expect(parseServerUrl('smtp://user@h').auth).toEqual({ user: 'user', password: '' });
  });

  it.each([
    ['', 'not a URL'],
    ['mail.example.com', 'not a URL'],
    ['http://h', 'unknown scheme "http"'],
    ['smtp://', 'the host is missing'],
    ['smtp://h:99999', 'not a URL'],
    ['smtp://h:x', 'not a URL'],
    ['smtp://h:0', 'port 0'],
    ['smtp://h/inbox', 'no path is allowed'],
    ['smtp://h?x=1', 'no query or fragment'],
    ['lmtp+unix://host/sock', 'has no host'],
    ['lmtp+unix://', 'socket path is missing'],
    ['smtp://:secret@h', 'a password without a user name'],
    ['smtp://u:%E0%A4%A@h', 'bad percent-encoding'],
  ])('refuses %j with SMTPInvalidArgumentError', (url, reason) => {
    const err = errorOf(url);
    expect(err.code).toBe('ERR_SMTP_INVALID_ARGUMENT');
    expect(err.message).toContain(reason);
  });

  it.each([
    'smtp://u:hunter2@h/x',
    'ftp://u:hunter2@h',
    'smtp://u:hun/ter2@h',
    'smtp://u:hunter2@h:bad',
    'u:hunter2@h',
  ])('never shows the password of %j', (url) => {
    const err = errorOf(url);
    expect(err.message).not.toMatch(/hunter2|hun|ter2/);
    expect(err.message).toContain('***@');
  });
});

describe('server URLs on a loopback server', () => {
  it('session$(url) connects, upgrades with STARTTLS and logs in from user:password@', async () => {
    const logins: string[] = [];
    const server = await startSmtpServer({
      authOptional: false,
      onAuth: (auth, _s, cb) => {
        logins.push(`${auth.username ?? ''}/${auth.password ?? ''}`);
        cb(null, { user: auth.username });
      },
    });
    try {
      const url = `smtp+starttls://me%40x.test:p%40ss@localhost:${server.port}`;
      await lastValueFrom(
        withSession$({ url, tls: { ca: testCa } }, (s) =>
          sendmail$(s, 'a@x.test', ['b@x.test'], 'Subject: u\r\n\r\nhi\r\n'),
        ),
      );
      expect(logins).toEqual(['me@x.test/p@ss']);
      expect(server.messages.map((m) => [m.to, m.secure])).toEqual([[['b@x.test'], true]]);
    } finally {
      await server.close();
    }
  });

  it('withSession$(string) takes the URL alone', async () => {
    const server = await startSmtpServer({ hideSTARTTLS: true });
    try {
      await lastValueFrom(
        withSession$(`smtp://127.0.0.1:${server.port}`, (s) => sendmail$(s, 'a@x.test', 'b@x.test', 'hi\r\n')),
      );
      expect(server.messages).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('session$ errors on subscribe for a bad URL', async () => {
    await expect(lastValueFrom(session$('smtp://u:pw@h/x'))).rejects.toMatchObject({
      code: 'ERR_SMTP_INVALID_ARGUMENT',
    });
  });

  it('new SMTPPool({ url }) sends there, and refuses a bad URL at once', async () => {
    const server = await startSmtpServer();
    const pool = new SMTPPool({ url: `smtp://127.0.0.1:${server.port}`, starttls: 'never' });
    try {
      await lastValueFrom(pool.sendmail$('a@x.test', ['b@x.test'], 'hi\r\n'));
      expect(server.messages.map((m) => m.to)).toEqual([['b@x.test']]);
      expect(() => new SMTPPool({ url: 'smtp:/nohost' })).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
      );
    } finally {
      await pool.close();
      await server.close();
    }
  });

  it('SMTP.fromUrl picks the class and connects', async () => {
    const server = await startSmtpServer();
    const smtp = SMTP.fromUrl(`smtp://127.0.0.1:${server.port}`);
    try {
      expect((await lastValueFrom(smtp.connect$())).code).toBe(220);
      expect(SMTP.fromUrl('smtps://h')).toBeInstanceOf(SMTP_SSL);
      expect(SMTP.fromUrl('lmtp+unix:///s')).toBeInstanceOf(LMTP);
      expect(() => SMTP.fromUrl('smtp://u:secret@h')).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
      );
    } finally {
      smtp.close();
      await server.close();
    }
  });
});
