/**
 * LMTP straight to Dovecot: one reply per accepted recipient after the body
 * (RFC 2033 §4.2), so one `delivery` event each.
 */
import { lastValueFrom } from 'rxjs';
import { LMTP } from '../lib';
import { CLIENT_TIMEOUT, expectNoOpenSockets, message, ofType, outcome, token } from './helpers/client';
import { OTHER, USER, env } from './helpers/env';
import { delivered, deliveredNow, expectDeliveredAs } from './helpers/observe';
import { canonical } from './helpers/postfix';
import { defined } from '../spec/helpers/defined';

const { overQuota, unknown } = env.addresses;

describe('LMTP to Dovecot', () => {
  let lmtp: LMTP | undefined;
  afterEach(async () => {
    lmtp?.close();
    lmtp = undefined;
    await expectNoOpenSockets();
  });

  it('reports a known user delivered, an unknown one refused at RCPT, and an over-quota one failed after the body', async () => {
    lmtp = new LMTP({
      host: env.host,
      port: env.dovecot.lmtp,
      localHostname: 'client.rx-smtp.test',
      timeout: CLIENT_TIMEOUT,
    });
    await lastValueFrom(lmtp.connect$());
    const id = token('lmtp');
    const input = message(id, USER, '.dotted line\nbare LF above\n');
    const { events, error } = await outcome(
      lmtp.sendmail$('sender@client.test', [USER, unknown, overQuota, OTHER], input),
    );
    expect(error).toBeUndefined();

    expect(ofType(events, 'recipient').map((e) => [e.recipient, e.accepted, e.reply.code])).toEqual([
      [USER, true, 250],
      [unknown, false, 550],
      [overQuota, true, 250],
      [OTHER, true, 250],
    ]);
    // One delivery event per accepted recipient, in RCPT order, after the body.
    expect(
      ofType(events, 'delivery').map((e) => [e.recipient, e.delivered, e.reply.code, e.reply.enhancedStatus]),
    ).toEqual([
      [USER, true, 250, '2.0.0'],
      [overQuota, false, 452, '4.2.2'],
      [OTHER, true, 250, '2.0.0'],
    ]);
    const types = events.map((e) => e.type);
    expect(types.indexOf('delivery')).toBeGreaterThan(types.lastIndexOf('recipient'));
    const sent = defined(ofType(events, 'sent')[0], 'a sent event');
    expect(types[types.length - 1]).toBe('sent');
    expect(Object.keys(sent.refused).sort()).toEqual([overQuota, unknown].sort());
    expect(sent.refused[overQuota]).toMatchObject({ code: 452 });

    expectDeliveredAs(await delivered(USER, id), canonical(input));
    expectDeliveredAs(await delivered(OTHER, id), canonical(input));
    expect(deliveredNow(overQuota, id)).toEqual([]);
    await lastValueFrom(lmtp.quit$());
  });

  it('fails with SMTPDataError when every accepted recipient fails after the body', async () => {
    lmtp = new LMTP({
      host: env.host,
      port: env.dovecot.lmtp,
      localHostname: 'client.rx-smtp.test',
      timeout: CLIENT_TIMEOUT,
    });
    await lastValueFrom(lmtp.connect$());
    const id = token('lmtp-quota');
    const { events, error } = await outcome(lmtp.sendmail$('sender@client.test', [overQuota], message(id, overQuota)));
    expect(error).toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 452 });
    expect(ofType(events, 'delivery')).toMatchObject([{ recipient: overQuota, delivered: false }]);
    // The connection is still usable: the next transaction delivers.
    const next = token('lmtp-next');
    const again = await outcome(lmtp.sendmail$('sender@client.test', [USER], message(next, USER)));
    expect(again.error).toBeUndefined();
    await delivered(USER, next);
    await lastValueFrom(lmtp.quit$());
  });
});
