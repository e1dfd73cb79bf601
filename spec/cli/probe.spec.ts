import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { testCa } from '../helpers/certs';
import { RealServer, startSmtpServer } from '../helpers/smtp-server';
import { FakeServer } from '../helpers/fake-server';
import { lines, runCli } from './run-cli';

describe('rx-smtp probe', () => {
  let real: RealServer | undefined;
  let ca: string;
  beforeAll(() => {
    ca = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-probe-')), 'ca.pem');
    fs.writeFileSync(ca, testCa);
  });
  afterEach(async () => {
    await real?.close();
    real = undefined;
  });

  it('shows the greeting, TLS after STARTTLS (protocol, cipher, certificate, expiry), AUTH mechanisms and capabilities', async () => {
    real = await startSmtpServer({ authMethods: ['PLAIN', 'LOGIN'] });
    const result = await runCli(['probe', '-s', `smtp+starttls://localhost:${real.port}`, '--ca', ca]);
    expect(result.code).toBe(0);
    const out = lines(result.stdout);
    expect(out[0]).toMatch(/^greeting {6}220 /);
    expect(out).toContainEqual(
      expect.stringMatching(/^tls {11}TLSv1\.[23] \S+; certificate localhost, expires \w{3} +\d+ .* GMT$/),
    );
    expect(out).toContainEqual('auth          PLAIN LOGIN');
    expect(out).toContainEqual('  PIPELINING');
  });

  it('shows TLS details over implicit TLS (smtps://)', async () => {
    real = await startSmtpServer({ secure: true });
    const result = await runCli(['probe', '-s', `smtps://localhost:${real.port}`, '--ca', ca, '--json']);
    expect(result.code).toBe(0);
    const [found] = lines(result.stdout).map((l) => JSON.parse(l) as { tls: Record<string, string> });
    expect(found?.tls).toEqual({
      protocol: expect.stringMatching(/^TLSv1\.[23]$/),
      cipher: expect.any(String),
      subject: 'localhost',
      validTo: expect.stringMatching(/GMT$/),
    });
  });

  it('--json prints one object', async () => {
    real = await startSmtpServer({ hideSTARTTLS: true });
    const result = await runCli(['probe', '-s', `smtp://127.0.0.1:${real.port}`, '--json']);
    expect(result.code).toBe(0);
    expect(lines(result.stdout).map((l) => JSON.parse(l) as unknown)).toEqual([
      expect.objectContaining({
        greeting: expect.stringMatching(/^220 /),
        esmtp: true,
        tls: null,
        auth: ['LOGIN', 'PLAIN'],
        capabilities: expect.objectContaining({ pipelining: '' }),
      }),
    ]);
  });

  it('exits 3 when the certificate does not verify', async () => {
    real = await startSmtpServer();
    const result = await runCli(['probe', '-s', `smtp+starttls://localhost:${real.port}`]);
    expect(result.code).toBe(3);
    expect(lines(result.stderr)).toEqual([expect.stringContaining('ERR_SMTP_TLS_CERTIFICATE')]);
  });

  it('--insecure accepts a certificate that does not verify', async () => {
    real = await startSmtpServer();
    const result = await runCli(['probe', '-s', `smtp+starttls://localhost:${real.port}`, '--insecure']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^tls {11}TLSv1/m);
  });

  it('exits 3 when STARTTLS is required and not offered', async () => {
    const fake = await FakeServer.start();
    try {
      const result = await runCli(['probe', '-s', `smtp+starttls://127.0.0.1:${fake.port}`]);
      expect(result.code).toBe(3);
      expect(lines(result.stderr)).toHaveLength(1);
    } finally {
      await fake.close();
    }
  });
});
