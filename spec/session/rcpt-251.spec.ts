import { Session } from '../../lib/session/session';
import { sendmail$ } from '../../lib/session/sendmail';
import { FakeServer } from '../helpers/fake-server';
import { collect } from '../helpers/events';
import { openSession } from '../helpers/session';

const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';
// RFC 5321 §3.4: "251 User not local; will forward" accepts the recipient.
const WILL_FORWARD = '251 2.1.5 User not local; will forward';

describe('sendmail$ and a 251 to RCPT', () => {
  let fake: FakeServer | undefined;
  let close: (() => void) | undefined;
  afterEach(async () => {
    close?.();
    await fake?.close();
    fake = close = undefined;
  });

  async function sessionWith(rcpt: (line: string) => string, pipelining: boolean): Promise<Session> {
    fake = await FakeServer.start({ handlers: { RCPT: rcpt }, ...(pipelining ? {} : { extensions: ['8BITMIME'] }) });
    const opened = await openSession(fake.port, { timeout: 2000 });
    close = opened.close;
    return opened.session;
  }

  it.each([true, false])(
    'counts the forwarded recipient as accepted, not refused (PIPELINING: %s)',
    async (pipelining) => {
      const session = await sessionWith((line) => (line.includes('fwd@') ? WILL_FORWARD : '250 2.1.5 Ok'), pipelining);
      const { values, error } = await collect(sendmail$(session, 'a@x.test', ['fwd@x.test', 'b@x.test'], MESSAGE));
      expect(error).toBeUndefined();
      expect(values.filter((e) => e.type === 'recipient')).toEqual([
        expect.objectContaining({
          recipient: 'fwd@x.test',
          accepted: true,
          reply: expect.objectContaining({ code: 251 }),
        }),
        expect.objectContaining({ recipient: 'b@x.test', accepted: true }),
      ]);
      expect(values[values.length - 1]).toMatchObject({ type: 'sent', refused: {} });
    },
  );

  it('sends the message when every recipient got a 251', async () => {
    const session = await sessionWith(() => WILL_FORWARD, true);
    const { values, error } = await collect(sendmail$(session, 'a@x.test', ['fwd@x.test'], MESSAGE));
    expect(error).toBeUndefined();
    expect(values[values.length - 1]).toMatchObject({ type: 'sent', reply: { code: 250 }, refused: {} });
    expect(fake!.session.messages.map(String)).toEqual([MESSAGE]);
  });
});
