import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { firstValueFrom } from 'rxjs';
import { SMTPInvalidArgumentError, SMTPServerDisconnected, SMTPTimeoutError } from '../../lib/errors';
import { connect$ } from '../../lib/transport/connect';
import { defaultLocalHostname, resolveEndpoint } from '../../lib/transport/options';
import { selfSigned, server, testCa } from '../helpers/certs';
import { greetingOf, hold } from '../helpers/connect';
import { FakeServer } from '../helpers/fake-server';

describe('resolveEndpoint', () => {
  it('splits "host:port" as smtplib does when no port is given', () => {
    expect(resolveEndpoint({ host: 'mx.test:2525' }, { port: 25 })).toEqual({ host: 'mx.test', port: 2525 });
    expect(resolveEndpoint({ host: 'mx.test:2525', port: 26 }, { port: 25 })).toEqual({
      host: 'mx.test:2525',
      port: 26,
    });
  });

  it('keeps IPv6 literals whole and applies the default port', () => {
    expect(resolveEndpoint({ host: '::1' }, { port: 465 })).toEqual({ host: '::1', port: 465 });
    expect(resolveEndpoint({}, { port: 25 })).toEqual({ host: 'localhost', port: 25 });
  });

  it('refuses a non-numeric port', () => {
    expect(() => resolveEndpoint({ host: 'mx.test:smtp' }, { port: 25 })).toThrow(SMTPInvalidArgumentError);
  });

  it('refuses a port outside 1-65535 or not a whole number, and keeps both ends of the range', () => {
    for (const port of [65536, 70000, -1, 2.5]) {
      expect(() => resolveEndpoint({ host: 'mx.test', port }, { port: 25 })).toThrow(`Invalid port: ${port}`);
    }
    expect(() => resolveEndpoint({ host: 'mx.test:99999' }, { port: 25 })).toThrow('Invalid port: 99999');
    expect(resolveEndpoint({ host: 'mx.test', port: 1 }, { port: 25 })).toEqual({ host: 'mx.test', port: 1 });
    expect(resolveEndpoint({ host: 'mx.test', port: 65535 }, { port: 25 })).toEqual({ host: 'mx.test', port: 65535 });
  });

  it('treats an LMTP host starting with "/" as a Unix socket', () => {
    expect(resolveEndpoint({ host: '/run/lmtp' }, { port: 2003, lmtp: true })).toEqual({ path: '/run/lmtp' });
  });
});

describe('defaultLocalHostname', () => {
  it('is the FQDN when it has a dot, else the address literal', () => {
    const fqdn = os.hostname();
    const expected = fqdn.includes('.') ? fqdn : '[127.0.0.1]';
    expect(defaultLocalHostname('127.0.0.1')).toBe(expected);
    if (!fqdn.includes('.')) expect(defaultLocalHostname('::1')).toBe('[IPv6:::1]');
    // No local address known (a socket not yet connected): the IPv4 loopback literal, as smtplib's fallback.
    if (!fqdn.includes('.')) expect(defaultLocalHostname(undefined)).toBe('[127.0.0.1]');
  });
});

describe('connect$', () => {
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('does nothing until subscribed', async () => {
    fake = await FakeServer.start();
    connect$({ host: '127.0.0.1', port: fake.port });
    await new Promise((r) => setImmediate(r));
    expect(fake.sessions).toHaveLength(0);
  });

  it('connects over TCP with "host:port" and binds the source address', async () => {
    fake = await FakeServer.start();
    const held = await hold({ host: `127.0.0.1:${fake.port}`, sourceAddress: { host: '127.0.0.1' } });
    expect((await greetingOf(held)).code).toBe(220);
    expect(held.connection.localAddress).toBe('127.0.0.1');
    await held.release();
  });

  it('errors with SMTPServerDisconnected when nothing listens', async () => {
    const port = await freePort();
    const err = await firstValueFrom(connect$({ host: '127.0.0.1', port })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(String(err)).toContain('ECONNREFUSED');
  });

  it('times out a connect that never completes', async () => {
    // A listening socket with a full backlog is hard to make portably; a TLS handshake that never starts is not.
    const silent = net.createServer((s) => s.resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const err = await firstValueFrom(connect$({ host: '127.0.0.1', port, secure: true, connectTimeout: 100 })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SMTPTimeoutError);
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it("times out a server that never greets after the connection's replyTimeout, naming the step", async () => {
    fake = await FakeServer.start({ greeting: null });
    const held = await hold({ host: '127.0.0.1', port: fake.port, replyTimeout: 100 });
    const err = await greetingOf(held).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPTimeoutError);
    expect(err).toMatchObject({ step: 'greeting', timeoutMs: 100 });
    await held.release();
  });

  it('connects over a Unix socket', async () => {
    const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-')), 'lmtp.sock');
    fake = await FakeServer.start({ path: socketPath, greeting: '220 lmtp.test LMTP' });
    const held = await hold({ host: socketPath, lmtp: true });
    expect((await greetingOf(held)).message).toBe('lmtp.test LMTP');
    await held.release();
  });

  describe('implicit TLS', () => {
    it('verifies the certificate against the given CA and sends SNI for a name', async () => {
      fake = await FakeServer.start({ implicitTls: true, tls: server });
      const held = await hold({ host: 'localhost', port: fake.port, secure: true, tls: { ca: testCa } });
      expect((await greetingOf(held)).code).toBe(220);
      expect(held.connection.secure).toBe(true);
      expect(fake.session.servername).toBe('localhost');
      await held.release();
    });

    it('sends no SNI for an IP literal', async () => {
      fake = await FakeServer.start({ implicitTls: true, tls: server });
      const held = await hold({ host: '127.0.0.1', port: fake.port, secure: true, tls: { ca: testCa } });
      await greetingOf(held);
      expect(fake.session.servername).toBeFalsy();
      await held.release();
    });

    it('refuses a self-signed certificate unless its CA is given', async () => {
      fake = await FakeServer.start({ implicitTls: true, tls: selfSigned });
      const err = await firstValueFrom(connect$({ host: 'localhost', port: fake.port, secure: true })).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'ERR_SMTP_TLS_CERTIFICATE', tlsCode: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
      expect(String(err)).toMatch(/self-signed|self signed/i);
      const held = await hold({ host: 'localhost', port: fake.port, secure: true, tls: { ca: selfSigned.cert } });
      expect((await greetingOf(held)).code).toBe(220);
      await held.release();
    });

    it('refuses a certificate whose name does not match the host', async () => {
      fake = await FakeServer.start({ implicitTls: true, tls: server });
      const err = await firstValueFrom(
        connect$({
          host: '127.0.0.1',
          port: fake.port,
          secure: true,
          tls: { ca: testCa, servername: 'mx.other.test' },
        }),
      ).catch((e: unknown) => e);
      expect(String(err)).toMatch(/altnames|does not match|Hostname/i);
    });
  });
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
