import { lastValueFrom, timeout, toArray } from 'rxjs';
import { sendAll$ } from '../../lib/pool/send-all';
import { selfSigned } from '../helpers/certs';
import { BODY, Bench } from './setup';

describe('SMTPPool and a certificate that fails verification', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('ends the message failed after one attempt, with the certificate error: retrying reaches the same certificate', async () => {
    const fake = await bench.fake({ implicitTls: true, tls: selfSigned });
    const pool = bench.pool(fake.port, { secure: true, retry: { attempts: 3, backoffMs: 1 } });
    const outcomes = await lastValueFrom(
      sendAll$(pool, [{ from: 'a@x.test', to: 'b@x.test', body: BODY }]).pipe(timeout(10_000), toArray()),
    );
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'ERR_SMTP_TLS_CERTIFICATE' } });
    await pool.close();
  });
});
