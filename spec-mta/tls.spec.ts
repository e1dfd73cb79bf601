/**
 * TLS against Postfix with the run's throw-away CA: certificates are always
 * verified, never switched off.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lastValueFrom } from 'rxjs';
import { SMTP, SMTP_SSL } from '../lib';
import { CLIENT_TIMEOUT, expectNoOpenSockets, message, ofType, outcome, sourceAddress, token } from './helpers/client';
import { USER, env, tls } from './helpers/env';
import { PostfixLog, delivered } from './helpers/observe';
import { plainPort, sendOnce } from './helpers/postfix';

/** A CA that did not sign the server's certificate (the unit tests' fixture). */
const otherCa = fs.readFileSync(path.resolve(__dirname, '../spec/fixtures/other-ca.pem'));

describe('TLS against Postfix', () => {
  afterEach(() => expectNoOpenSockets());

  it('delivers over implicit TLS verified with the run CA, and Postfix records the message as received over TLS', async () => {
    const from = sourceAddress();
    const smtp = new SMTP_SSL({
      host: env.host,
      port: env.postfix.implicitTls,
      tls,
      timeout: CLIENT_TIMEOUT,
      sourceAddress: from,
    });
    const id = token('implicit-tls');
    await lastValueFrom(smtp.connect$());
    const { events, error } = await outcome(smtp.sendmail$('sender@client.test', [USER], message(id, USER)));
    await lastValueFrom(smtp.quit$());
    expect(error).toBeUndefined();
    expect(ofType(events, 'sent')).toHaveLength(1);
    const mail = (await delivered(USER, id)).toString();
    expect(mail).toMatch(new RegExp(`\\[${from.host.replace(/\./g, '\\.')}\\]\\)\\r\\n\\t\\(using TLSv1\\.[23] `));
    expect(mail).toMatch(/by mx\.rx-smtp\.test \(Postfix\) with ESMTPS id/);
  });

  it('refuses a server whose certificate another CA signed, before any command is sent', async () => {
    const log = PostfixLog.mark();
    const from = sourceAddress();
    const smtp = new SMTP_SSL({
      host: env.host,
      port: env.postfix.implicitTls,
      tls: { ca: otherCa },
      timeout: CLIENT_TIMEOUT,
      sourceAddress: from,
    });
    const { error } = await outcome(smtp.connect$());
    expect(error?.code).toBe('ERR_SMTP_TLS_CERTIFICATE');
    expect((error?.cause as { code?: string } | undefined)?.code).toMatch(
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|CERT/,
    );
    // Postfix saw a connection that never got past the handshake: no command at all.
    expect(await log.sessionEnd(from.host)).toEqual({ commands: '0/0' });
    smtp.close();
  });

  it('refuses STARTTLS to a server whose certificate another CA signed, and sends no mail command', async () => {
    const log = PostfixLog.mark();
    const config = plainPort({ tls: { ca: otherCa }, starttls: 'required' });
    const { events, error } = await sendOnce(config, 'sender@client.test', [USER], message(token('bad-ca'), USER));
    expect(events).toEqual([]);
    expect(error?.code).toBe('ERR_SMTP_TLS_CERTIFICATE');
    // Postfix counts the STARTTLS whose handshake failed as "0 of 1 succeeded".
    const counts = await log.sessionEnd(config.sourceAddress.host);
    expect(counts).toMatchObject({ ehlo: '1', starttls: '0/1' });
    expect(counts.mail).toBeUndefined();
  });

  it('upgrades the plain port with STARTTLS, says EHLO again, and delivers over TLS', async () => {
    const log = PostfixLog.mark();
    const config = plainPort({ starttls: 'required' });
    const id = token('starttls');
    const { events, error } = await sendOnce(config, 'sender@client.test', [USER], message(id, USER));
    expect(error).toBeUndefined();
    expect(ofType(events, 'sent')).toHaveLength(1);
    expect(await log.sessionEnd(config.sourceAddress.host)).toMatchObject({
      ehlo: '2',
      starttls: '1',
      mail: '1',
      quit: '1',
    });
    const mail = (await delivered(USER, id)).toString();
    expect(mail).toMatch(/\(using TLSv1\.[23] /);
    expect(mail).toMatch(/with ESMTPS id/);
  });

  it('starttls$ on the facade forgets the plaintext capabilities and learns them again over TLS', async () => {
    const smtp = new SMTP({
      host: env.host,
      port: env.postfix.plain,
      tls,
      timeout: CLIENT_TIMEOUT,
      sourceAddress: sourceAddress(),
    });
    await lastValueFrom(smtp.connect$());
    await lastValueFrom(smtp.ehlo$('client.rx-smtp.test'));
    expect(smtp.hasExtn('starttls')).toBe(true);
    const reply = await lastValueFrom(smtp.starttls$());
    expect(reply.code).toBe(220);
    expect(smtp.esmtpFeatures).toEqual({});
    await lastValueFrom(smtp.ehlo$('client.rx-smtp.test'));
    expect(smtp.hasExtn('starttls')).toBe(false);
    expect(smtp.hasExtn('chunking')).toBe(true);
    await lastValueFrom(smtp.quit$());
  });
});
