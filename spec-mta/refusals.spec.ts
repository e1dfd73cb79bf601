/**
 * Postfix's scripted refusals: per recipient (5xx and 4xx in one message), per
 * sender, and by size. A refused recipient is a value; the others still get the message.
 */
import { Readable } from 'node:stream';
import { lastValueFrom } from 'rxjs';
import { MailOptions, SMTPPool } from '../lib';
import { expectNoOpenSockets, message, ofType, token } from './helpers/client';
import { OTHER, USER, env } from './helpers/env';
import { PostfixLog, delivered, deliveredNow } from './helpers/observe';
import { plainPort, sendOnce } from './helpers/postfix';
import { defined } from '../spec/helpers/defined';

const { reject, tempfail, rejectSender, tempfailSender, unknown } = env.addresses;

describe('refusals by Postfix', () => {
  afterEach(() => expectNoOpenSockets());

  for (const [name, options] of [
    ['DATA', { chunking: false }],
    ['BDAT', {}],
  ] as [string, MailOptions][]) {
    it(`reports 5xx and 4xx recipients as events and in the refused map, and delivers to the others (${name})`, async () => {
      const log = PostfixLog.mark();
      const id = token('partial');
      const to = [reject, USER, tempfail, unknown, OTHER];
      const config = plainPort();
      const { events, error } = await sendOnce(config, 'sender@client.test', to, message(id, USER), options);
      expect(error).toBeUndefined();
      const recipients = ofType(events, 'recipient');
      expect(recipients.map((e) => [e.recipient, e.accepted, e.reply.code, e.reply.enhancedStatus])).toEqual([
        [reject, false, 550, '5.1.1'],
        [USER, true, 250, '2.1.5'],
        [tempfail, false, 450, '4.2.0'],
        [unknown, false, 550, '5.1.1'],
        [OTHER, true, 250, '2.1.5'],
      ]);
      expect(events[events.length - 1]?.type).toBe('sent');
      const sent = defined(ofType(events, 'sent')[0], 'a sent event');
      expect(Object.keys(sent.refused).sort()).toEqual([reject, tempfail, unknown].sort());
      expect(sent.refused[tempfail]).toMatchObject({ code: 450 });
      expect(sent.refused[reject]).toMatchObject({ code: 550 });
      await delivered(USER, id);
      await delivered(OTHER, id);
      // Postfix logged each refusal for this connection, at RCPT.
      const client = config.sourceAddress.host.replace(/\./g, '\\.');
      const rejected = await log.waitForCount(new RegExp(`reject: RCPT from \\S+\\[${client}\\]`), 3);
      for (const address of [reject, tempfail, unknown]) expect(rejected.join('\n')).toContain(`<${address}>`);
    });
  }

  it('fails with every recipient refused as SMTPRecipientsRefused, carrying each reply, and delivers nothing', async () => {
    const id = token('all-refused');
    const { events, error } = await sendOnce(plainPort(), 'sender@client.test', [reject, tempfail], message(id, USER));
    expect(error?.code).toBe('ERR_SMTP_RECIPIENTS_REFUSED');
    expect(error?.recipients).toMatchObject({ [reject]: { code: 550 }, [tempfail]: { code: 450 } });
    expect(ofType(events, 'recipient').map((e) => e.accepted)).toEqual([false, false]);
  });

  for (const [sender, smtpCode] of [
    [rejectSender, 550],
    [tempfailSender, 450],
  ] as const) {
    it(`fails a refused sender (${smtpCode}) with SMTPSenderRefused, no recipient accepted and nothing delivered`, async () => {
      const log = PostfixLog.mark();
      const id = token('sender');
      const config = plainPort();
      const { events, error } = await sendOnce(config, sender, [USER], message(id, USER));
      expect(error).toMatchObject({ code: 'ERR_SMTP_SENDER_REFUSED', smtpCode, sender });
      expect(ofType(events, 'recipient').filter((e) => e.accepted)).toEqual([]);
      expect(ofType(events, 'sent')).toEqual([]);
      // Postfix refused the MAIL and the connection went on to RSET and QUIT.
      expect(await log.sessionEnd(config.sourceAddress.host)).toMatchObject({ mail: '0/1', rset: '1', quit: '1' });
      expect(deliveredNow(USER, id)).toEqual([]);
    });
  }

  it('refuses a message over SIZE before MAIL: ERR_SMTP_SIZE_EXCEEDED, and Postfix saw no MAIL command', async () => {
    const log = PostfixLog.mark();
    const config = plainPort();
    const limit = env.postfix.messageSizeLimit;
    const body = message(token('too-big'), USER, 'x'.repeat(limit));
    const { events, error } = await sendOnce(config, 'sender@client.test', [USER], body);
    expect(error).toMatchObject({ code: 'ERR_SMTP_SIZE_EXCEEDED', limit });
    expect(events).toEqual([]);
    const counts = await log.sessionEnd(config.sourceAddress.host);
    expect(counts.ehlo).toBeDefined();
    expect(counts.mail).toBeUndefined();
    expect(counts.data).toBeUndefined();
    expect(counts.bdat).toBeUndefined();
  });

  for (const [name, options] of [
    ['DATA', { chunking: false }],
    ['BDAT', {}],
  ] as [string, MailOptions][]) {
    it(`fails a streamed body over SIZE with Postfix's 552 as SMTPDataError (${name})`, async () => {
      const limit = env.postfix.messageSizeLimit;
      const line = Buffer.from(`${'y'.repeat(1022)}\r\n`);
      const lines = Math.ceil(limit / line.length) + 64;
      const body = Readable.from(
        (function* () {
          for (let i = 0; i < lines; i++) yield line;
        })(),
      );
      const { events, error } = await sendOnce(plainPort(), 'sender@client.test', [USER], body, options);
      expect(error).toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 552 });
      expect(ofType(events, 'recipient')).toMatchObject([{ accepted: true }]);
      expect(ofType(events, 'sent')).toEqual([]);
    });
  }

  it('retries only the recipient Postfix deferred, in a follow-up of its own, and reports it deferred', async () => {
    const log = PostfixLog.mark();
    const to = env.addresses.discard;
    const config = plainPort({ starttls: 'never' });
    const pool = new SMTPPool({
      ...config,
      maxConnections: 1,
      retry: { attempts: 3, backoffMs: 10 },
      retryRecipients: true,
    });
    const outcome = await lastValueFrom(
      pool.send$({ from: 'retry@client.test', to: [to, tempfail], body: message(token('retry'), to) }),
    );
    await pool.close();

    expect(outcome).toMatchObject({ status: 'sent', attempts: 1 });
    if (outcome.status !== 'sent') return;
    expect(Object.keys(outcome.refused)).toEqual([tempfail]);
    expect(outcome.deferred[tempfail]).toMatchObject({ code: 450, enhancedStatus: '4.2.0' });
    // Postfix deferred tempfail@ three times (the first try and two follow-ups) and took the other address (the first reject
    // carries a queue id: the other recipient was accepted before it).
    const dots = (text: string) => text.replace(/\./g, '\\.');
    const deferrals = new RegExp(
      `(?:NOQUEUE|[0-9A-F]+): reject: RCPT from [^ ]*\\[${dots(config.sourceAddress.host)}\\].*to=<${dots(tempfail)}>`,
    );
    await log.waitForCount(deferrals, 3);
    expect(log.lines().filter((l) => deferrals.test(l))).toHaveLength(3);
    expect(log.lines().filter((l) => l.includes('NOQUEUE') && l.includes(`to=<${to}>`))).toEqual([]);
  });
});
