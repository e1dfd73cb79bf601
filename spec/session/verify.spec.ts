import { lastValueFrom, toArray } from 'rxjs';
import { SMTP, hasCode, verify$ } from '../../lib';
import { testCa } from '../helpers/certs';
import { FakeServer } from '../helpers/fake-server';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';

describe('verify$ (nodemailer verify())', () => {
  let real: RealServer | undefined;
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await real?.close();
    await fake?.close();
    real = fake = undefined;
  });

  /** smtp-server that offers AUTH only over TLS (its default) and knows one user. */
  async function authServer(): Promise<RealServer> {
    return startSmtpServer({
      authOptional: false,
      onAuth: (auth, _session, callback) =>
        auth.username === 'tim' && auth.password === 'hunter2'
          ? callback(null, { user: auth.username })
          : callback(new Error('Invalid username or password')),
    });
  }

  it('connects, upgrades with STARTTLS, authenticates over TLS and reports', async () => {
    real = await authServer();
    const config = {
      host: 'localhost',
      port: real.port,
      tls: { ca: testCa },
      auth: { user: 'tim', password: 'hunter2' },
    };
    const reports = await lastValueFrom(verify$(config).pipe(toArray()));
    expect(reports).toEqual([
      {
        greeting: expect.objectContaining({ code: 220 }),
        capabilities: expect.objectContaining({ auth: expect.stringContaining('PLAIN') }),
        secure: true,
        authenticated: true,
      },
    ]);
    expect(reports[0]?.capabilities).not.toHaveProperty('starttls');
  });

  it('errors with SMTPAuthenticationError on a wrong password', async () => {
    real = await authServer();
    const config = {
      host: 'localhost',
      port: real.port,
      tls: { ca: testCa },
      auth: { user: 'tim', password: 'wrong' },
    };
    const err = await lastValueFrom(verify$(config)).catch((e: unknown) => e);
    expect(hasCode(err, 'ERR_SMTP_AUTHENTICATION')).toBe(true);
  });

  it('without credentials, reports an unauthenticated session and ends it with QUIT', async () => {
    fake = await FakeServer.start({ extensions: ['PIPELINING'] });
    const report = await lastValueFrom(verify$({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' }));
    expect(report).toMatchObject({ secure: false, authenticated: false, capabilities: { pipelining: '' } });
    expect(fake.session.commands).toEqual(['EHLO c.test', 'QUIT']);
  });

  it('errors with SMTPNotSupportedError when STARTTLS is required and not offered', async () => {
    fake = await FakeServer.start({ extensions: ['PIPELINING'] });
    const err = await lastValueFrom(verify$({ host: '127.0.0.1', port: fake.port, starttls: 'required' })).catch(
      (e: unknown) => e,
    );
    expect(hasCode(err, 'ERR_SMTP_NOT_SUPPORTED')).toBe(true);
  });

  it("leaves smtplib's SMTP.verify$ (VRFY) alone", async () => {
    fake = await FakeServer.start();
    const smtp = new SMTP({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' });
    await lastValueFrom(smtp.connect$());
    expect((await lastValueFrom(smtp.verify$('Tim <tim@x.test>'))).code).toBe(252);
    smtp.close();
    expect(fake.session.commands).toEqual(['VRFY tim@x.test']);
  });
});
