import { classifyFailure } from '../../lib/pool/outcome';
import { Session } from '../../lib/session/session';
import { sendmail$ } from '../../lib/session/sendmail';
import { SessionConfig } from '../../lib/session/open-session';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { collect } from '../helpers/events';
import { openSession } from '../helpers/session';

const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';
// One byte of text past smtplib's 8192-byte line, CRLF included.
const LONG_LINE = `250 ${'x'.repeat(9000)}`;

/**
 * A reply that breaks one of our limits was never read: it is no verdict of the server's.
 * After the final dot the message may have been delivered; before, nothing was refused.
 */
describe('a reply over our limits', () => {
  let fake: FakeServer;
  let held: { session: Session; close(): void } | undefined;
  afterEach(async () => {
    held?.close();
    held = undefined;
    await fake.close();
  });

  async function sessionWith(script: FakeScript, config: Partial<SessionConfig> = {}): Promise<Session> {
    fake = await FakeServer.start(script);
    held = await openSession(fake.port, { timeout: 2000, ...config });
    return held.session;
  }

  const send = (session: Session) => collect(sendmail$(session, 'a@x.test', ['b@x.test'], MESSAGE));

  it.each([
    ['the final dot of DATA', { handlers: { '.': LONG_LINE } }],
    ['the last BDAT', { extensions: ['PIPELINING', 'CHUNKING'], handlers: { BDAT: LONG_LINE } }],
  ])('after %s is "possibly delivered", not a refusal', async (_name, script: FakeScript) => {
    const session = await sessionWith(script);
    const { error } = await send(session);
    expect(error).toMatchObject({
      code: 'ERR_SMTP_POSSIBLY_DELIVERED',
      cause: { code: 'ERR_SMTP_REPLY_LIMIT', message: 'Line too long.' },
    });
    expect(classifyFailure(error)).toEqual({ status: 'possibly-delivered', transient: false });
  });

  it('with too many lines after the final dot is "possibly delivered"', async () => {
    const session = await sessionWith(
      { extensions: ['PIPELINING'], handlers: { '.': '250-a\n250-b\n250-c\n250 d' } },
      { replyLimits: { maxLines: 3 } },
    );
    const { error } = await send(session);
    expect(error).toMatchObject({ code: 'ERR_SMTP_POSSIBLY_DELIVERED', cause: { code: 'ERR_SMTP_REPLY_LIMIT' } });
  });

  it('before the body fails the connection, and a pool may try the message again', async () => {
    const session = await sessionWith({ handlers: { MAIL: LONG_LINE.replace('250', '550') } });
    const { error } = await send(session);
    expect(error).toMatchObject({ code: 'ERR_SMTP_REPLY_LIMIT', message: 'Line too long.' });
    expect(error).not.toHaveProperty('smtpCode');
    expect(classifyFailure(error)).toEqual({ status: 'failed', transient: true });
    expect(fake.session.messages).toEqual([]);
  });
});
