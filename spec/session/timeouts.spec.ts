import { lastValueFrom, take } from 'rxjs';
import { LMTP, SMTP, SMTPPool, SMTP_SSL, hasCode, session$ } from '../../lib';
import { resolveTimeouts } from '../../lib/session/session';
import { FakeServer } from '../helpers/fake-server';

// Node counts in ms, smtplib in seconds: a value that would fire at once or never is refused.
const BAD = [0, -1, NaN, Infinity, -Infinity];

describe('timeout (ms) validation', () => {
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it.each(BAD)('the classes refuse timeout %p at construction', (timeout) => {
    for (const Client of [SMTP, SMTP_SSL, LMTP]) {
      expect(() => new Client({ timeout })).toThrow(expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }));
    }
    expect(() => new SMTP({ timeouts: { dataEnd: timeout } })).toThrow(
      /timeouts\.dataEnd must be a positive, finite number of milliseconds/,
    );
  });

  it('takes any positive, finite timeout, and leaves the unset steps at their defaults', () => {
    expect(() => new SMTP({ timeout: 0.5, timeouts: { mail: 1 } })).not.toThrow();
    expect(resolveTimeouts(undefined, { mail: 1 })).toMatchObject({ mail: 1, dataEnd: 600_000 });
  });

  it('session$ errors before connecting', async () => {
    fake = await FakeServer.start();
    const err = await lastValueFrom(session$({ host: '127.0.0.1', port: fake.port, timeout: 0 })).catch(
      (e: unknown) => e,
    );
    expect(hasCode(err, 'ERR_SMTP_INVALID_ARGUMENT')).toBe(true);
    // A valid session on the same server afterwards is its first connection.
    await lastValueFrom(session$({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' }).pipe(take(1)));
    expect(fake.sessions).toHaveLength(1);
  });

  it('an SMTPPool with a negative timeout fails its message with the error, without connecting', async () => {
    fake = await FakeServer.start();
    const pool = new SMTPPool({ host: '127.0.0.1', port: fake.port, timeout: -5 });
    const err = await lastValueFrom(pool.sendmail$('a@x.test', 'b@x.test', 'Hi\r\n')).catch((e: unknown) => e);
    await pool.close();
    expect(hasCode(err, 'ERR_SMTP_INVALID_ARGUMENT')).toBe(true);
    expect(fake.sessions).toHaveLength(0);
  });
});
