/**
 * sendMessage$ through Postfix: the envelope comes from the message's own
 * headers, Bcc reaches its recipient but never appears in the delivered bytes.
 */
import { Readable } from 'node:stream';
import { sendMessage$ } from '../lib';
import { expectNoOpenSockets, ofType, token } from './helpers/client';
import { OTHER, USER } from './helpers/env';
import { delivered, expectDeliveredAs } from './helpers/observe';
import { canonical, onSession, plainPort } from './helpers/postfix';

describe('sendMessage$ through Postfix and Dovecot', () => {
  afterEach(() => expectNoOpenSockets());

  for (const [shape, wrap] of [
    ['a string', (m: string) => m],
    ['a stream', (m: string) => Readable.from([Buffer.from(m)])],
  ] as const) {
    it(`reads the envelope from the headers of ${shape}, delivers to To and Bcc, and strips Bcc from the bytes`, async () => {
      const id = token('send-message');
      const header = `From: Sender <sender@client.test>\r\nTo: User <${USER}>\r\nSubject: ${id}\r\n`;
      const rest = `Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <${id}@client.test>\r\n\r\nBody line\n.dot line\n`;
      const raw = `${header}Bcc: <${OTHER}>\r\n${rest}`;
      const { events, error } = await onSession(plainPort(), (session) => sendMessage$(session, wrap(raw)));
      expect(error).toBeUndefined();
      expect(ofType(events, 'recipient').map((e) => [e.recipient, e.accepted])).toEqual([
        [USER, true],
        [OTHER, true],
      ]);
      const expected = canonical(header + rest);
      expectDeliveredAs(await delivered(USER, id), expected);
      const bcc = await delivered(OTHER, id);
      expectDeliveredAs(bcc, expected);
      expect(bcc.toString()).not.toMatch(/^Bcc:/im);
    });
  }
});
