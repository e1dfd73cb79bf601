import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { firstValueFrom, take, timeout } from 'rxjs';
import { resolveEndpoint } from '../../lib/transport/options';
import { noCommonName } from '../helpers/certs';
import { greetingOf, hold } from '../helpers/connect';
import { FakeServer } from '../helpers/fake-server';

/*
 * Behaviours of lib/transport/ that the seed-3 mutation sample found unpinned (or never reached);
 * each test fails with its mutant planted. Every wait has a deadline.
 */

const DEADLINE = 5_000;

describe('lib/transport survivors (seed 3)', () => {
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('splits "host:port" at a leading colon too, as smtplib does', () => {
    expect(resolveEndpoint({ host: ':2525' }, { port: 25 })).toEqual({ host: '', port: 2525 });
  });

  it('names a Unix socket by its path in debug$, where a TCP peer is address:port', async () => {
    const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rx-smtp-')), 'lmtp.sock');
    fake = await FakeServer.start({ path: socketPath, greeting: '220 lmtp.test LMTP' });
    const held = await hold({ host: socketPath, lmtp: true });
    try {
      const first = await firstValueFrom(held.connection.debug$.pipe(take(1), timeout(DEADLINE)));
      expect(first).toMatchObject({ direction: 'info', text: `connected to ${socketPath}` });
    } finally {
      await held.release();
    }
  });

  it('tlsInfo() gives an empty subject for a certificate with no common name (a SAN-only one)', async () => {
    fake = await FakeServer.start({ implicitTls: true, tls: noCommonName });
    const held = await hold({ host: 'localhost', port: fake.port, secure: true, tls: { ca: noCommonName.cert } });
    try {
      await greetingOf(held);
      expect(held.connection.tlsInfo()).toMatchObject({ subject: '' });
    } finally {
      await held.release();
    }
  });
});
