import { Session } from '../../lib/session/session';
import { sendmail$ } from '../../lib/session/sendmail';
import { FakeScript } from '../helpers/fake-server';
import { collect } from '../helpers/events';
import { fakeSessions } from '../helpers/session';
import { defined } from '../helpers/defined';

// RFC 1870: SIZE= is what the server weighs the message by before taking it; it must never be
// below the bytes that then arrive.
describe('SIZE= of an in-memory body', () => {
  const bench = fakeSessions();
  const sessionWith = (script: FakeScript): Promise<Session> => bench.open(script);

  const declared = (): number =>
    Number(/^MAIL .* SIZE=(\d+)/.exec(bench.fake.session.commands.find((c) => c.startsWith('MAIL')) ?? '')?.[1]);

  const bodies: [string, string | Uint8Array][] = [
    ['bare LF line ends', 'Subject: hi\n\nline one\nline two\n'],
    ['bare CR line ends', 'Subject: hi\r\rline one\rline two\r'],
    ['line-leading dots', '.Subject: hi\r\n\r\n.\r\n..two\r\n.'],
    ['every kind at once, unterminated', Buffer.from('a\rb\nc\r\nd\n\r.e\r\r\n.\n.f')],
    ['UTF-8 text and bare LFs', 'Subject: héllo\n\nçà\n.é'],
    // 212 bytes as given, 254 on the wire: the shape of the report's case.
    ['many short lines', 'Subject: x\n\n' + 'line\n'.repeat(40)],
  ];

  describe('with DATA', () => {
    const script: FakeScript = { extensions: ['PIPELINING', '8BITMIME', 'SIZE 10000'] };

    it.each(bodies)('counts the bytes sent after 354 for %s', async (_name, body) => {
      const session = await sessionWith(script);
      const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', body));
      expect(error).toBeUndefined();
      // The fake keeps the doubled dots and drops the final ".\r\n": the bytes that went out for the body.
      expect(declared()).toBe(bench.fake.session.messages[0]?.length);
    });

    it('refuses before MAIL a body that only outgrows the limit once its line ends are CRLF', async () => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'SIZE 100'] });
      const body = 'x\n'.repeat(40); // 80 bytes as given, 120 on the wire
      const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', body));
      expect(error).toMatchObject({ code: 'ERR_SMTP_SIZE_EXCEEDED', size: 120, limit: 100 });
      expect(bench.fake.session.commands).toEqual(['EHLO c.test']);
    });
  });

  describe('with BDAT', () => {
    const script: FakeScript = { extensions: ['PIPELINING', '8BITMIME', 'CHUNKING', 'SIZE 10000'] };

    it.each(bodies)('is at least the BDAT bytes for %s', async (_name, body) => {
      const session = await sessionWith(script);
      const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', body));
      expect(error).toBeUndefined();
      const sent = defined(bench.fake.session.messages[0], 'the message sent').length;
      expect(declared()).toBeGreaterThanOrEqual(sent);
      // BDAT does not close the last line: the bound is 2 bytes loose at most.
      expect(declared()).toBeLessThanOrEqual(sent + 2);
    });
  });
});
