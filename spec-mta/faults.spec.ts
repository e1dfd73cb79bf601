/**
 * smtp-sink as a fault injector: every transaction ends in exactly one outcome
 * (sent, refused, failed before the body, possibly delivered), with the right
 * typed error, no hang, and no socket left open.
 */
import { lastValueFrom } from 'rxjs';
import { SMTP } from '../lib';
import { CLIENT_TIMEOUT, expectNoOpenSockets, message, ofType, outcome, sourceAddress, token } from './helpers/client';
import { env } from './helpers/env';
import { sinkReceived } from './helpers/observe';

const FROM = 'sender@client.test';
const TO = 'rcpt@sink.test';

type Fault = 'q' | 'Q' | 'f' | 'r';
type At = 'mail' | 'rcpt' | 'data' | 'dot';

/** What each fault must end in: the error code, the server's reply code if it sent one, and whether the connection survives. */
interface Expected {
  readonly code: string;
  readonly smtpCode?: number;
  /** `refused` (the server said no), `failed` (lost before the body was complete), `possibly delivered`. */
  readonly outcome: 'refused' | 'failed' | 'possibly delivered';
  /** The connection can carry another command afterwards (RSET was sent, nothing closed it). */
  readonly usable: boolean;
  /** Recipient events seen before the failure. */
  readonly recipients: number;
}

const disconnected = (recipients: number): Expected => ({
  code: 'ERR_SMTP_SERVER_DISCONNECTED',
  outcome: 'failed',
  usable: false,
  recipients,
});
const closing = (code: string, recipients: number): Expected => ({
  code,
  smtpCode: 421,
  outcome: 'refused',
  usable: false,
  recipients,
});
const refusal = (code: string, smtpCode: number, recipients: number): Expected => ({
  code,
  smtpCode,
  outcome: 'refused',
  usable: true,
  recipients,
});

const EXPECTED: Record<Fault, Record<At, Expected>> = {
  // -q: the server closes without a reply.
  q: {
    mail: disconnected(0),
    rcpt: disconnected(0),
    data: disconnected(1),
    // RFC 5321 §4.5.3.2 / RFC 1047: lost after the final dot, before its reply.
    dot: { code: 'ERR_SMTP_POSSIBLY_DELIVERED', outcome: 'possibly delivered', usable: false, recipients: 1 },
  },
  // -Q: 421, then the server closes (smtplib closes too, and raises the step's error).
  Q: {
    mail: closing('ERR_SMTP_SENDER_REFUSED', 0),
    rcpt: closing('ERR_SMTP_RECIPIENTS_REFUSED', 1),
    data: closing('ERR_SMTP_DATA', 1),
    dot: closing('ERR_SMTP_DATA', 1),
  },
  // -f: 5xx (smtp-sink's "500 5.3.0 Error: command failed").
  f: {
    mail: refusal('ERR_SMTP_SENDER_REFUSED', 500, 0),
    rcpt: refusal('ERR_SMTP_RECIPIENTS_REFUSED', 500, 1),
    data: refusal('ERR_SMTP_DATA', 500, 1),
    dot: refusal('ERR_SMTP_DATA', 500, 1),
  },
  // -r: 4xx (smtp-sink's "450 4.3.0 Error: command failed").
  r: {
    mail: refusal('ERR_SMTP_SENDER_REFUSED', 450, 0),
    rcpt: refusal('ERR_SMTP_RECIPIENTS_REFUSED', 450, 1),
    data: refusal('ERR_SMTP_DATA', 450, 1),
    dot: refusal('ERR_SMTP_DATA', 450, 1),
  },
};

const FAULT_NAMES: Record<Fault, string> = {
  q: 'disconnects without a reply (-q)',
  Q: 'answers 421 and disconnects (-Q)',
  f: 'answers 5xx (-f)',
  r: 'answers 4xx (-r)',
};
const AT_NAMES: Record<At, string> = { mail: 'MAIL', rcpt: 'RCPT', data: 'DATA', dot: 'the final dot' };

/** A connected facade client on a sink port, with its own source address. */
async function connected(port: number): Promise<SMTP> {
  const smtp = new SMTP({
    host: env.host,
    port,
    localHostname: 'client.rx-smtp.test',
    timeout: CLIENT_TIMEOUT,
    sourceAddress: sourceAddress(),
  });
  await lastValueFrom(smtp.connect$());
  return smtp;
}

describe('against smtp-sink fault injection', () => {
  let smtp: SMTP | undefined;
  afterEach(async () => {
    smtp?.close();
    smtp = undefined;
    await expectNoOpenSockets();
  });

  for (const fault of Object.keys(EXPECTED) as Fault[]) {
    describe(`a server that ${FAULT_NAMES[fault]}`, () => {
      const cases = Object.keys(EXPECTED[fault]) as At[];
      for (const at of cases) {
        const expected = EXPECTED[fault][at];
        const closes = expected.usable ? 'keeps the connection' : 'closes the connection';
        it(`at ${AT_NAMES[at]}: ends in ${expected.code} (${expected.outcome}) and ${closes}`, async () => {
          smtp = await connected(env.sinks.faults[fault][at]);
          const id = token(`fault-${fault}-${at}`);
          const { events, error } = await outcome(smtp.sendmail$(FROM, [TO], message(id, TO)));

          expect(error?.code).toBe(expected.code);
          if (expected.smtpCode !== undefined) {
            const code =
              error?.smtpCode ?? (error?.recipients as Record<string, { code: number }> | undefined)?.[TO]?.code;
            expect(code).toBe(expected.smtpCode);
          }
          expect(ofType(events, 'sent')).toEqual([]);
          expect(ofType(events, 'recipient')).toHaveLength(expected.recipients);

          // Usable: the next command is answered; closed: it fails as disconnected, at once.
          const next = await outcome(smtp.noop$());
          if (expected.usable) expect(next.events).toMatchObject([{ code: 250 }]);
          else expect(next.error?.code).toBe('ERR_SMTP_SERVER_DISCONNECTED');
        });
      }
    });
  }

  describe('a server that stops answering', () => {
    const TIMEOUT = 500;
    /** A client whose every step times out after TIMEOUT ms. */
    const patient = (port: number) =>
      new SMTP({
        host: env.host,
        port,
        localHostname: 'client.rx-smtp.test',
        timeout: TIMEOUT,
        sourceAddress: sourceAddress(),
      });

    it('before its greeting: connect$ fails with ERR_SMTP_TIMEOUT (greeting) and closes the socket', async () => {
      smtp = patient(env.sinks.stall.connect);
      const { error } = await outcome(smtp.connect$());
      expect(error).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'greeting' });
    });

    // smtp-sink holds back the replies of the whole pipelined group (and then answers out of order), so
    // which recipient events arrive first is the sink's business; the outcome must not depend on it.
    for (const at of ['rcpt', 'data'] as const) {
      it(`at ${at.toUpperCase()}: fails with ERR_SMTP_TIMEOUT before the body, and closes the connection`, async () => {
        smtp = patient(env.sinks.stall[at]);
        await lastValueFrom(smtp.connect$());
        const { events, error } = await outcome(smtp.sendmail$(FROM, [TO], message(token(`stall-${at}`), TO)));
        expect(error).toMatchObject({ code: 'ERR_SMTP_TIMEOUT' });
        expect(ofType(events, 'sent')).toEqual([]);
        expect(ofType(events, 'progress')).toEqual([]);
        // The connection was destroyed; later commands fail with the reason it ended.
        expect((await outcome(smtp.noop$())).error?.code).toBe('ERR_SMTP_TIMEOUT');
      });
    }

    it('after the final dot: fails as possibly delivered, caused by the dataEnd timeout', async () => {
      smtp = patient(env.sinks.stall.dot);
      await lastValueFrom(smtp.connect$());
      const { events, error } = await outcome(smtp.sendmail$(FROM, [TO], message(token('stall-dot'), TO)));
      expect(error?.code).toBe('ERR_SMTP_POSSIBLY_DELIVERED');
      expect(error?.cause).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'dataEnd' });
      expect(ofType(events, 'sent')).toEqual([]);
    });
  });

  it('a server that stops reading mid-DATA with 550 (-A) fails the transaction as not delivered, without hanging', async () => {
    smtp = await connected(env.sinks.abortMidData);
    // A body far larger than the socket buffers: the writer would block forever if it ignored the 550.
    const body = `${'x'.repeat(998)}\r\n`.repeat(8 * 1024);
    const { events, error } = await outcome(smtp.sendmail$(FROM, [TO], message(token('abort'), TO, body)));
    // The final dot was never written: never "possibly delivered", never sent. The 550 is the verdict
    // when it is read. smtp-sink then resets the connection, and a body write that meets the reset
    // before the client has read the 550 (it came in a later segment, still in the kernel) ends the
    // socket with EPIPE, the 550 unread: a plain disconnect, retryable, which is all the client can
    // know. Node destroys a socket on a write error; smtplib raises SMTPServerDisconnected alike.
    // (When 354 and 550 share a segment the 550 always wins: spec/session/sendmail.spec.ts.)
    if (error?.code === 'ERR_SMTP_DATA') expect(error).toMatchObject({ smtpCode: 550 });
    else
      expect(error).toMatchObject({
        code: 'ERR_SMTP_SERVER_DISCONNECTED',
        message: expect.stringMatching(/EPIPE|ECONNRESET/),
      });
    expect(ofType(events, 'recipient')).toMatchObject([{ accepted: true }]);
    expect(ofType(events, 'sent')).toEqual([]);
  });

  it('falls back to HELO on a server without ESMTP (-e), and the message arrives over plain SMTP', async () => {
    smtp = await connected(env.sinks.heloOnly);
    const id = token('helo');
    const { events, error } = await outcome(smtp.sendmail$(FROM, [TO], message(id, TO)));
    expect(error).toBeUndefined();
    expect(smtp.doesEsmtp).toBe(false);
    expect(smtp.heloResp).toContain('sink-heloOnly');
    expect(ofType(events, 'sent')).toMatchObject([{ reply: { code: 250 }, refused: {} }]);
    const seen = await sinkReceived('heloOnly', id);
    expect(seen).toMatchObject({ proto: 'SMTP', helo: 'client.rx-smtp.test', mail: `<${FROM}>`, rcpts: [`<${TO}>`] });
    await lastValueFrom(smtp.quit$());
  });

  it('sends in lockstep to a server without PIPELINING (-p): each command waits for the previous reply', async () => {
    smtp = await connected(env.sinks.noPipelining);
    await lastValueFrom(smtp.ehlo$());
    expect(smtp.hasExtn('pipelining')).toBe(false);
    smtp.setDebuglevel(1);
    const wire: string[] = [];
    const watching = smtp.debug$.subscribe((e) => wire.push(`${e.direction} ${e.text.replace(/ .*/s, '')}`));
    const id = token('nopipe');
    const { events, error } = await outcome(smtp.sendmail$(FROM, [TO, 'second@sink.test'], message(id, TO)));
    watching.unsubscribe();
    expect(error).toBeUndefined();
    expect(ofType(events, 'recipient').map((e) => e.accepted)).toEqual([true, true]);
    const envelope = wire.filter((w) => /^(send (MAIL|RCPT|DATA)|receive (250|354))$/.test(w)).slice(0, 8);
    expect(envelope).toEqual([
      'send MAIL',
      'receive 250',
      'send RCPT',
      'receive 250',
      'send RCPT',
      'receive 250',
      'send DATA',
      'receive 354',
    ]);
    const seen = await sinkReceived('noPipelining', id);
    expect(seen.rcpts).toEqual([`<${TO}>`, '<second@sink.test>']);
    await lastValueFrom(smtp.quit$());
  });

  it('delivers to the default sink with every message line intact', async () => {
    smtp = await connected(env.sinks.default);
    const id = token('sink');
    const { events, error } = await outcome(
      smtp.sendmail$(FROM, [TO], message(id, TO, '.leading dot\r\nlast line\r\n')),
    );
    expect(error).toBeUndefined();
    expect(ofType(events, 'sent')).toHaveLength(1);
    const seen = await sinkReceived('default', id);
    expect(seen.proto).toBe('ESMTP');
    expect(seen.message).toContain('\n.leading dot\nlast line\n');
    await lastValueFrom(smtp.quit$());
  });
});
