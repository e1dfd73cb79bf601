import { Readable } from 'node:stream';
import { sendMessage$ } from '../../lib/session/send-message';
import { Session } from '../../lib/session/session';
import { sendmail$ } from '../../lib/session/sendmail';
import { collect } from '../helpers/events';
import { FakeScript } from '../helpers/fake-server';
import { fakeSessions } from '../helpers/session';

/**
 * RFC 6152 §3: 8-bit data only to a server that offered 8BITMIME; RFC 6531 §3.2: UTF-8 header
 * fields only to one that offered SMTPUTF8. Both are refused before MAIL, not discovered by the
 * recipient as mojibake.
 */
describe('a message the server cannot take as it is', () => {
  const bench = fakeSessions();
  const sessionWith = (script: FakeScript): Promise<Session> => bench.open(script);

  /** Every byte the server received: nothing after the greeting's EHLO. */
  const onlyEhlo = (): void => expect(bench.fake.text()).toBe('EHLO c.test\r\n');

  const ASCII_HEADER_8BIT_BODY = 'From: a@x.test\r\nTo: b@x.test\r\nSubject: hi\r\n\r\nçà\r\n';
  const UTF8_HEADER = 'From: a@x.test\r\nTo: b@x.test\r\nSubject: héllo\r\n\r\nplain\r\n';

  describe('without 8BITMIME', () => {
    const script: FakeScript = { extensions: ['PIPELINING', 'SIZE 100000'] };

    it.each([
      ['a string', 'Subject: é\r\n\r\nçà\r\n'],
      ['bytes', Buffer.from([0x53, 0x3a, 0x20, 0xff, 0x0d, 0x0a])],
    ])('refuses an 8-bit body given as %s before MAIL', async (_name, body) => {
      const session = await sessionWith(script);
      const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', body));
      expect(error).toMatchObject({ code: 'ERR_SMTP_NOT_SUPPORTED' });
      expect((error as Error).message).toMatch(/8-bit.*8BITMIME \(RFC 6152\)/);
      onlyEhlo();
    });

    it('refuses an 8-bit message to sendMessage$ before MAIL', async () => {
      const session = await sessionWith(script);
      const { error } = await collect(sendMessage$(session, ASCII_HEADER_8BIT_BODY));
      expect(error).toMatchObject({ code: 'ERR_SMTP_NOT_SUPPORTED' });
      onlyEhlo();
    });

    it('still sends a 7-bit body', async () => {
      const session = await sessionWith(script);
      const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', 'Subject: hi\r\n\r\nplain\r\n'));
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands[1]).toBe('MAIL FROM:<a@x.test> SIZE=22');
    });
  });

  describe('UTF-8 header fields without SMTPUTF8', () => {
    const script: FakeScript = { extensions: ['PIPELINING', '8BITMIME'] };

    it('refuses an in-memory message before MAIL', async () => {
      const session = await sessionWith(script);
      const { error } = await collect(sendMessage$(session, UTF8_HEADER));
      expect(error).toMatchObject({ code: 'ERR_SMTP_NOT_SUPPORTED' });
      expect((error as Error).message).toMatch(/UTF-8 in its header fields.*SMTPUTF8 \(RFC 6531\)/);
      onlyEhlo();
    });

    it('refuses a streamed message before MAIL', async () => {
      const session = await sessionWith(script);
      const { error } = await collect(sendMessage$(session, Readable.from([Buffer.from(UTF8_HEADER)])));
      expect(error).toMatchObject({ code: 'ERR_SMTP_NOT_SUPPORTED' });
      onlyEhlo();
    });
  });

  it('sends UTF-8 header fields with SMTPUTF8 and BODY=8BITMIME where offered', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING', '8BITMIME', 'SMTPUTF8'] });
    const { error } = await collect(sendMessage$(session, Readable.from([Buffer.from(UTF8_HEADER)])));
    expect(error).toBeUndefined();
    expect(bench.fake.session.commands[1]).toBe('MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8');
    expect(bench.fake.session.messages[0]?.toString()).toBe(UTF8_HEADER);
  });
});
