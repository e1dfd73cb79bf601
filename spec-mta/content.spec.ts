/**
 * What reaches the mailbox: through Postfix (DATA or BDAT), over LMTP to
 * Dovecot, into a Maildir stored with CRLF. The delivered file must end with
 * exactly the canonical bytes the caller gave; in front of them only the trace
 * headers the servers add (Return-Path, Delivered-To, Received).
 */
import { Readable } from 'node:stream';
import { MailOptions } from '../lib';
import { expectNoOpenSockets, message, ofType, token } from './helpers/client';
import { OTHER, USER } from './helpers/env';
import { PostfixLog, delivered, expectDeliveredAs } from './helpers/observe';
import { canonical, plainPort, sendOnce } from './helpers/postfix';

/** Bare LF, bare CR, CRLF, leading dots, a line with a lone dot, 8-bit text: everything a body can hold. */
function awkwardBody(): string {
  return [
    '.a line starting with a dot\n',
    '..two dots\n',
    '.\n',
    'a lone dot above; CRLF here\r\n',
    'bare CR\rin the middle\n',
    '8-bit: Grüße, naïve café, 日本語, emoji 📨\n',
    '\n',
    '. dot space\n',
    'no dot at the end',
  ].join('');
}

/** Thousands of lines, most starting with dots, ended by bare LFs. */
function dotsAndBareLfs(lines: number): string {
  return Array.from({ length: lines }, (_, i) => `${'.'.repeat(i % 4)}line ${i}${i % 7 === 0 ? ' ÿ' : ''}\n`).join('');
}

/** The body streamed in small odd-sized chunks, so line ends and dots straddle chunk boundaries. */
function streamed(bytes: Buffer, size = 997): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return Readable.from(chunks);
}

const MODES: { name: string; options: MailOptions; verb: 'data' | 'bdat' }[] = [
  { name: 'DATA', options: { chunking: false }, verb: 'data' },
  { name: 'BDAT (CHUNKING)', options: {}, verb: 'bdat' },
];

describe('delivered bytes through Postfix and Dovecot', () => {
  afterEach(() => expectNoOpenSockets());

  for (const mode of MODES) {
    it(`through ${mode.name}: the Maildir holds the canonical input (CRLF line ends, dots as given, 8-bit intact)`, async () => {
      const log = PostfixLog.mark();
      const id = token(`bytes-${mode.verb}`);
      const input = message(id, USER, awkwardBody());
      const config = plainPort();
      const { events, error } = await sendOnce(config, 'sender@client.test', [USER], input, mode.options);
      expect(error).toBeUndefined();
      expect(ofType(events, 'sent')).toMatchObject([{ reply: { code: 250 }, refused: {} }]);
      // The session used the verb under test, and only it.
      const counts = await log.sessionEnd(config.sourceAddress.host);
      expect(counts[mode.verb]).toBeDefined();
      expect(counts[mode.verb === 'data' ? 'bdat' : 'data']).toBeUndefined();
      expectDeliveredAs(await delivered(USER, id), canonical(input));
    });

    it(`through ${mode.name}: a streamed body full of leading dots and bare LFs arrives byte for byte`, async () => {
      const id = token(`dots-${mode.verb}`);
      const input = Buffer.from(message(id, USER, dotsAndBareLfs(20_000)), 'utf8');
      const { events, error } = await sendOnce(
        plainPort(),
        'sender@client.test',
        [USER],
        streamed(input),
        mode.options,
      );
      expect(error).toBeUndefined();
      expect(ofType(events, 'progress').pop()?.bytesSent).toBeGreaterThanOrEqual(input.length);
      expect(ofType(events, 'sent')).toHaveLength(1);
      expectDeliveredAs(await delivered(USER, id), canonical(input));
    });
  }

  it('sends a UTF-8 envelope with SMTPUTF8: Postfix accepts it, delivers to the UTF-8 recipient, and flags the message SMTPUTF8', async () => {
    const log = PostfixLog.mark();
    const id = token('smtputf8');
    const sender = 'jörg.müller@client.test';
    const utf8Recipient = 'пользователь@discard.test';
    const { events, error } = await sendOnce(plainPort(), sender, [utf8Recipient, USER], message(id, USER));
    expect(error).toBeUndefined();
    expect(ofType(events, 'recipient').map((e) => [e.recipient, e.accepted])).toEqual([
      [utf8Recipient, true],
      [USER, true],
    ]);
    expect(ofType(events, 'sent')).toMatchObject([{ refused: {} }]);
    await log.waitFor(new RegExp(`from=<${sender}>, size=`, 'u'));
    await log.waitFor(new RegExp(`to=<${utf8Recipient}>, .*status=sent`, 'u'));
    // Dovecot 2.3's LMTP does not offer SMTPUTF8, so Postfix cannot pass this message on: proof
    // that it recorded the transaction as SMTPUTF8, i.e. that MAIL FROM carried the parameter.
    await log.waitFor(/to=<user@example\.test>, .*status=bounced \(SMTPUTF8 is required/);
  });

  it('passes DSN parameters (RET, ENVID, NOTIFY, ORCPT) that Postfix accepts and acts on', async () => {
    const log = PostfixLog.mark();
    const id = token('dsn');
    const envid = `env+id=${id}`;
    const { events, error } = await sendOnce(
      plainPort(),
      OTHER,
      [{ address: USER, notify: ['SUCCESS', 'FAILURE'], orcpt: `original+${id}@client.test` }],
      message(id, USER),
      { ret: 'HDRS', envid },
    );
    expect(error).toBeUndefined();
    expect(ofType(events, 'sent')).toHaveLength(1);
    await delivered(USER, id);
    // NOTIFY=SUCCESS: Postfix reports the delivery to the sender, quoting ENVID and ORCPT (decoded from xtext).
    const report = (await delivered(OTHER, envid)).toString();
    expect(report).toContain(`Original-Envelope-Id: ${envid}`);
    expect(report).toContain(`Original-Recipient: rfc822;original+${id}@client.test`);
    expect(report).toMatch(/Action: (delivered|relayed)/);
    // RET=HDRS: the report returns the headers only, not the body.
    expect(report).toContain(`Message-ID: <${id}@client.test>`);
    expect(report).not.toContain('Hello from the real-MTA suite.');
    await log.waitFor(/sender delivery status notification/);
  });
});
