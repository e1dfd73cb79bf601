import { firstValueFrom, lastValueFrom, timeout } from 'rxjs';
import {
  SMTPAuthenticationError,
  SMTPDataError,
  SMTPException,
  SMTPInvalidArgumentError,
  SMTPNotSupportedError,
  SMTPResponseException,
} from '../../lib/errors';
import { auth$, login$, oauth$ } from '../../lib/session/authenticate';
import { session$ } from '../../lib/session/open-session';
import { MailOptions, RcptOptions, Recipient } from '../../lib/session/envelope';
import { SendEvent, sendmail$ } from '../../lib/session/sendmail';
import { Session, resolveTimeouts } from '../../lib/session/session';
import { starttls$ } from '../../lib/session/starttls';
import { Body } from '../../lib/wire/body-source';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { server, testCa } from '../helpers/certs';
import { collect } from '../helpers/events';
import { fakeSessions } from '../helpers/session';

/*
 * The grammars lib/session checks before anything is written (ESMTP parameters, DSN NOTIFY) and the
 * texts of the errors it raises, written against the Regex and StringLiteral mutants of a mutation
 * sweep: each accepted case must reach the wire exactly as given, each refused one must fail with its
 * typed error and message before a byte is written. Every wait has a deadline.
 */

const DEADLINE = 5_000;
const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';

describe('lib/session grammars and error texts (mutation sweep)', () => {
  const bench = fakeSessions();

  /** A greeted session on a fake offering `extensions`, with the EHLO of the opening forgotten. */
  async function sessionOffering(extensions: readonly string[], script: FakeScript = {}): Promise<Session> {
    const session = await bench.open({ extensions, ...script });
    bench.fake.session.commands.length = 0;
    return session;
  }

  /** One sendmail$ transaction to the end, under a deadline: its events, or its error. */
  function send(
    session: Session,
    recipients: readonly (string | Recipient)[],
    mailOptions: MailOptions = {},
    rcptOptions: RcptOptions = {},
    body: Body = MESSAGE,
  ): Promise<{ values: SendEvent[]; error?: unknown }> {
    return collect(sendmail$(session, 'a@x.test', recipients, body, mailOptions, rcptOptions).pipe(timeout(DEADLINE)));
  }

  /** The error `send` ended with, checked to be an `SMTPInvalidArgumentError` raised before any command. */
  function refusedBeforeWriting(outcome: { error?: unknown }): Error {
    expect(outcome.error).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(bench.fake.session.commands).toEqual([]);
    return outcome.error as Error;
  }

  // RFC 5321 §4.1.2: esmtp-param = esmtp-keyword ["=" esmtp-value];
  // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 / %d62-126 / UTF-8).
  describe('the ESMTP parameter grammar', () => {
    const accepted: [string, string][] = [
      ['X', 'a keyword of one character and no value'],
      ['XY', 'a keyword of two characters'],
      ['x-tag', 'a lower-case keyword with a hyphen'],
      ['1X=y', 'a keyword that starts with a digit'],
      ['X=a', 'a value of one character'],
      ['X=ab', 'a value of two characters'],
      ['X-TAG=a.b-1', 'a hyphenated keyword and a dotted value'],
      ['X=+-!#~', 'a value of punctuation'],
    ];
    const refused: [string, string][] = [
      ['-X', 'a keyword that starts with a hyphen'],
      ['=X', 'a value with no keyword'],
      ['', 'nothing at all'],
      ['X_Y', 'an underscore in the keyword'],
      ['X Y', 'a blank in the keyword'],
      ['X=', 'an empty value'],
      ['X=a b', 'a blank in the value'],
      ['X=a\tb', 'a tab in the value (a control character a command argument may hold)'],
      ['X=a\u00a0b', 'a no-break space in the value'],
      ['X=a=b', 'an "=" in the value'],
    ];

    it.each(accepted)('MAIL carries %j (%s) as given', async (param) => {
      const session = await sessionOffering(['PIPELINING']);
      const { error } = await send(session, ['b@x.test'], { params: [param] });
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands.slice(0, 2)).toEqual([`MAIL FROM:<a@x.test> ${param}`, 'RCPT TO:<b@x.test>']);
    });

    it.each(refused)('MAIL refuses %j (%s) before writing, naming it', async (param) => {
      const session = await sessionOffering(['PIPELINING']);
      const error = refusedBeforeWriting(await send(session, ['b@x.test'], { params: [param] }));
      expect(error.message).toBe(`Not an ESMTP parameter: ${JSON.stringify(param)}`);
    });

    it.each(accepted)('RCPT carries %j (%s) as given', async (param) => {
      const session = await sessionOffering(['PIPELINING']);
      const { error } = await send(session, ['b@x.test'], {}, { params: [param] });
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands.slice(0, 2)).toEqual(['MAIL FROM:<a@x.test>', `RCPT TO:<b@x.test> ${param}`]);
    });

    it.each(refused)('RCPT refuses %j (%s) before writing MAIL, naming it', async (param) => {
      const session = await sessionOffering(['PIPELINING']);
      const to = [{ address: 'b@x.test', params: [param] }];
      const error = refusedBeforeWriting(await send(session, to));
      expect(error.message).toBe(`Not an ESMTP parameter: ${JSON.stringify(param)}`);
    });

    it('an explicit BODY= parameter (any case) replaces the BODY=8BITMIME an 8-bit body would add', async () => {
      const session = await sessionOffering(['PIPELINING', '8BITMIME']);
      const body = Buffer.from('Subject: caf\xe9\r\n\r\ncaf\xe9\r\n', 'latin1');
      const { error } = await send(session, ['b@x.test'], { params: ['body=8BITMIME'] }, {}, body);
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands[0]).toBe('MAIL FROM:<a@x.test> body=8BITMIME');
    });
  });

  it('an explicit SMTPUTF8 parameter is sent once, where the caller put it', async () => {
    const session = await sessionOffering(['PIPELINING', 'SMTPUTF8']);
    const { error } = await send(session, ['b@x.test'], { smtputf8: true, params: ['X=1', 'smtputf8'] });
    expect(error).toBeUndefined();
    expect(bench.fake.session.commands[0]).toBe('MAIL FROM:<a@x.test> X=1 smtputf8');
  });

  // RFC 3461 §4.1: NOTIFY="NOTIFY=" ("NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY")).
  describe('the DSN NOTIFY grammar', () => {
    const accepted: [NonNullable<Recipient['notify']>, string][] = [
      ['NEVER', 'NEVER'],
      [['SUCCESS'], 'SUCCESS'],
      [['DELAY', 'FAILURE'], 'DELAY,FAILURE'],
      [['SUCCESS', 'FAILURE', 'DELAY'], 'SUCCESS,FAILURE,DELAY'],
    ];
    const refused: string[][] = [
      [],
      ['NEVER', 'SUCCESS'],
      ['SUCCESS', 'NEVER'],
      ['success'],
      ['SUCCESS', 'SOMETIMES'],
      ['XSUCCESS'],
      ['SUCCESSX'],
      ['SUCCESS', ''],
    ];

    it.each(accepted)('RCPT carries NOTIFY=%j as NOTIFY=%s', async (notify, wire) => {
      const session = await sessionOffering(['PIPELINING', 'DSN']);
      const { error } = await send(session, [{ address: 'b@x.test', notify }]);
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands[1]).toBe(`RCPT TO:<b@x.test> NOTIFY=${wire}`);
    });

    it.each(refused.map((list) => [list]))('NOTIFY=%j is refused before MAIL, naming the value', async (list) => {
      const session = await sessionOffering(['PIPELINING', 'DSN']);
      const notify = list as unknown as NonNullable<Recipient['notify']>;
      const error = refusedBeforeWriting(await send(session, [{ address: 'b@x.test', notify }]));
      expect(error.message).toBe(`Invalid NOTIFY value: ${JSON.stringify(list.join(','))}`);
    });
  });

  describe('DATA or BDAT', () => {
    it('a server without CHUNKING gets the body by DATA', async () => {
      const session = await sessionOffering(['PIPELINING']);
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands).toEqual(['MAIL FROM:<a@x.test>', 'RCPT TO:<b@x.test>', 'DATA']);
      expect(bench.fake.text()).toMatch(/\r\nDATA\r\nSubject: hi\r\n\r\nHello\.\r\n\.\r\n$/);
    });

    it('a server that offers CHUNKING gets the body by BDAT', async () => {
      const session = await sessionOffering(['PIPELINING', 'CHUNKING']);
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands).toEqual([
        'MAIL FROM:<a@x.test>',
        'RCPT TO:<b@x.test>',
        `BDAT ${MESSAGE.length} LAST`,
      ]);
      expect(bench.fake.session.messages.map(String)).toEqual([MESSAGE]);
    });

    it('chunking: false sends DATA to a server that offers CHUNKING', async () => {
      const session = await sessionOffering(['PIPELINING', 'CHUNKING']);
      const { error } = await send(session, ['b@x.test'], { chunking: false });
      expect(error).toBeUndefined();
      expect(bench.fake.session.commands).toEqual(['MAIL FROM:<a@x.test>', 'RCPT TO:<b@x.test>', 'DATA']);
      expect(bench.fake.session.messages.map(String)).toEqual([MESSAGE]);
    });
  });

  // The command a refusal answers is part of what users read (`SMTPDataError.command`).
  describe('which command a refusal of the message answers', () => {
    it.each([
      ['the final dot (DATA)', ['PIPELINING'], '.', '.'],
      ['BDAT LAST (CHUNKING)', ['PIPELINING', 'CHUNKING'], 'BDAT', 'BDAT LAST'],
      ['DATA itself, pipelined', ['PIPELINING'], 'DATA', 'DATA'],
      ['DATA itself, one command at a time', [], 'DATA', 'DATA'],
    ])('a refusal of %s names it', async (_what, extensions, verb, named) => {
      const session = await sessionOffering(extensions, { handlers: { [verb]: '554 5.7.1 Refused as spam' } });
      const { error } = await send(session, ['b@x.test']);
      expect(error).toBeInstanceOf(SMTPDataError);
      expect(error).toMatchObject({ smtpCode: 554, command: named, message: '554 5.7.1 Refused as spam' });
    });

    it('a refusal of STARTTLS names it', async () => {
      const session = await sessionOffering(['PIPELINING', 'STARTTLS'], {
        handlers: { STARTTLS: '454 4.7.0 TLS not available' },
      });
      const err = await lastValueFrom(starttls$(session).pipe(timeout(DEADLINE))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPResponseException);
      expect(err).toMatchObject({ smtpCode: 454, command: 'STARTTLS', message: '454 4.7.0 TLS not available' });
    });
  });

  describe('REQUIRETLS (RFC 8689)', () => {
    const tlsBench = fakeSessions({ timeout: 2000, starttls: 'required', tls: { ca: testCa } });

    async function tlsSessionOffering(extensions: readonly string[]): Promise<Session> {
      const session = await tlsBench.open({ extensions: ['STARTTLS', ...extensions], tls: server });
      tlsBench.fake.session.commands.length = 0;
      return session;
    }

    it('goes on MAIL over TLS to a server that offers it', async () => {
      const session = await tlsSessionOffering(['PIPELINING', 'REQUIRETLS']);
      expect(session.connection.secure).toBe(true);
      const { error } = await collect(
        sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { requireTls: true }).pipe(timeout(DEADLINE)),
      );
      expect(error).toBeUndefined();
      expect(tlsBench.fake.session.commands).toEqual(['MAIL FROM:<a@x.test> REQUIRETLS', 'RCPT TO:<b@x.test>', 'DATA']);
    });

    it('is refused over TLS to a server that does not offer it, before MAIL', async () => {
      const session = await tlsSessionOffering(['PIPELINING']);
      const { error } = await collect(
        sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { requireTls: true }).pipe(timeout(DEADLINE)),
      );
      expect(error).toBeInstanceOf(SMTPNotSupportedError);
      expect((error as Error).message).toBe('REQUIRETLS needs a TLS connection to a server that offers it (RFC 8689)');
      expect(tlsBench.fake.session.commands).toEqual([]);
    });
  });

  describe('what the refusals say', () => {
    /** The message of the `SMTPNotSupportedError` a transaction fails with before writing MAIL. */
    async function refusal(extensions: readonly string[], mailOptions: MailOptions, body: Body = MESSAGE) {
      const session = await sessionOffering(extensions);
      const { error } = await send(session, ['b@x.test'], mailOptions, {}, body);
      expect(error).toBeInstanceOf(SMTPNotSupportedError);
      expect(bench.fake.session.commands).toEqual([]);
      return (error as Error).message;
    }

    it('UTF-8 header fields to a server without SMTPUTF8', async () => {
      expect(await refusal(['PIPELINING', '8BITMIME'], { smtputf8: true })).toBe(
        'The message has UTF-8 in its header fields (RFC 6532) and the server does not offer SMTPUTF8 (RFC 6531): ' +
          'encode them as RFC 2047 encoded-words to send it to this server',
      );
    });

    it('an 8-bit body to a server without 8BITMIME', async () => {
      const body = Buffer.from('Subject: hi\r\n\r\ncaf\xe9\r\n', 'latin1');
      expect(await refusal(['PIPELINING'], {}, body)).toBe(
        'The message has 8-bit data (bytes of 0x80 or more) and the server does not offer 8BITMIME (RFC 6152): ' +
          'encode it as 7-bit MIME (quoted-printable or base64) to send it to this server',
      );
    });

    it('BODY=BINARYMIME to a server with CHUNKING and no BINARYMIME', async () => {
      expect(await refusal(['PIPELINING', 'CHUNKING'], { body: 'BINARYMIME' })).toBe(
        'BODY=BINARYMIME needs the BINARYMIME and CHUNKING extensions (RFC 3030)',
      );
    });

    it('REQUIRETLS over a connection in clear', async () => {
      expect(await refusal(['PIPELINING', 'REQUIRETLS'], { requireTls: true })).toBe(
        'REQUIRETLS needs a TLS connection to a server that offers it (RFC 8689)',
      );
    });

    it('an ORCPT with a line break, naming the ORCPT', async () => {
      const session = await sessionOffering(['PIPELINING', 'DSN']);
      const to = [{ address: 'b@x.test', orcpt: 'b@x.test\r\nRSET' }];
      const error = refusedBeforeWriting(await send(session, to));
      expect(error.message).toBe('The ORCPT contains a control character (0x0d) at offset 8; refusing to send it');
    });

    it('login$ to a server that does not offer AUTH', async () => {
      const session = await sessionOffering(['PIPELINING']);
      const err = await lastValueFrom(login$(session, 'u', 'p', { allowPlaintextAuth: true })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPNotSupportedError);
      expect((err as Error).message).toBe('SMTP AUTH extension not supported by server.');
      expect(bench.fake.session.commands).toEqual([]);
    });

    it('login$ to a server whose AUTH mechanisms are all unknown to the client', async () => {
      const session = await sessionOffering(['PIPELINING', 'AUTH GSSAPI NTLM']);
      const err = await lastValueFrom(login$(session, 'u', 'p', { allowPlaintextAuth: true })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPException);
      expect((err as Error).message).toBe('No suitable authentication method found.');
      expect(bench.fake.session.commands).toEqual([]);
    });
  });

  describe('what a bad timeout is told', () => {
    it.each([
      [0, {}, 'timeout must be a positive, finite number of milliseconds, got 0'],
      [undefined, { dataEnd: NaN }, 'timeouts.dataEnd must be a positive, finite number of milliseconds, got NaN'],
      [undefined, { mail: -1 }, 'timeouts.mail must be a positive, finite number of milliseconds, got -1'],
    ])('resolveTimeouts(%p, %p) says which one and what it got', (timeoutMs, timeouts, message) => {
      expect(() => resolveTimeouts(timeoutMs, timeouts)).toThrow(new SMTPInvalidArgumentError(message));
      expect(() => resolveTimeouts(timeoutMs, timeouts)).toThrow(SMTPInvalidArgumentError);
    });
  });

  describe('what AUTH shows', () => {
    const trusted = { allowPlaintextAuth: true } as const;
    const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

    it('a refused AUTH names the command, mechanism included', async () => {
      const session = await sessionOffering(['PIPELINING', 'AUTH PLAIN'], {
        handlers: { AUTH: '535 5.7.8 Authentication credentials invalid' },
      });
      const err = await lastValueFrom(login$(session, 'u', 'p', trusted).pipe(timeout(DEADLINE))).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(err).toMatchObject({
        smtpCode: 535,
        command: 'AUTH PLAIN',
        message: '535 5.7.8 Authentication credentials invalid',
      });
    });

    it("a refused XOAUTH2 carries the server's JSON error after the reply text", async () => {
      const json = '{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}';
      const session = await sessionOffering(['PIPELINING', 'AUTH XOAUTH2'], {
        handlers: { AUTH: `334 ${b64(json)}`, '*': '535 5.7.8 Username and Password not accepted' },
      });
      const err = await lastValueFrom(
        oauth$(session, { user: 'u@x.test', token: 'tok', ...trusted }).pipe(timeout(DEADLINE)),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPAuthenticationError);
      expect(err).toMatchObject({
        smtpCode: 535,
        command: 'AUTH XOAUTH2',
        message: `535 5.7.8 Username and Password not accepted (${json})`,
      });
      // RFC 7628 §3.2.3 / Google: the error challenge is answered with an empty line.
      expect(bench.fake.session.commands.slice(1)).toEqual(['']);
    });

    it('an empty initial response goes out as "=" (RFC 4954 §4)', async () => {
      const session = await sessionOffering(['PIPELINING', 'AUTH X'], { handlers: { AUTH: '235 2.7.0 ok' } });
      const step = await lastValueFrom(
        auth$(session, { name: 'X', authobject: () => '' }, trusted).pipe(timeout(DEADLINE)),
      );
      expect(step.reply.code).toBe(235);
      expect(bench.fake.session.commands).toEqual(['AUTH X =']);
    });

    it('debug$ shows each response of the exchange as ****, never its text', async () => {
      const session = await sessionOffering(['PIPELINING', 'AUTH LOGIN'], {
        handlers: { AUTH: '334 UGFzc3dvcmQ6', '*': '235 2.7.0 ok' },
      });
      const sent: string[] = [];
      session.connection.debug$.subscribe((e) => e.direction === 'send' && sent.push(e.text));
      await lastValueFrom(login$(session, 'user', 'secret', trusted).pipe(timeout(DEADLINE)));
      expect(bench.fake.session.commands).toEqual([`AUTH LOGIN ${b64('user')}`, b64('secret')]);
      expect(sent).toEqual(['AUTH LOGIN ****', '****']);
    });

    it('a SaslMechanism whose name has a line break is refused before writing, naming the AUTH command', async () => {
      const session = await sessionOffering(['PIPELINING', 'AUTH X']);
      const err = await lastValueFrom(
        auth$(
          session,
          { name: 'X\r\nRSET', initialResponse: () => null, respond: () => '', finish: () => undefined },
          trusted,
        ).pipe(timeout(DEADLINE)),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
      expect((err as Error).message).toBe(
        'The AUTH command contains a control character (0x0d) at offset 6; refusing to send it',
      );
      expect(bench.fake.session.commands).toEqual([]);
    });
  });

  describe('what the logger is told', () => {
    let fake: FakeServer | undefined;
    afterEach(async () => {
      await fake?.close();
      fake = undefined;
    });

    it('each line of the dialogue goes to debug as an SMTP wire event', async () => {
      fake = await FakeServer.start({ extensions: ['PIPELINING'] });
      const calls: [string, object, string][] = [];
      const at = (level: string) => (fields: object, text: string) => void calls.push([level, fields, text]);
      const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
      const config = { host: '127.0.0.1', port: fake.port, localHostname: 'client.test', timeout: 2000, logger };
      await firstValueFrom(session$({ ...config, starttls: 'never' }).pipe(timeout(DEADLINE)));
      expect(calls).toContainEqual([
        'debug',
        { event: 'wire', direction: 'receive', text: '220 fake.test ESMTP' },
        'SMTP wire',
      ]);
      expect(calls).toContainEqual([
        'debug',
        { event: 'wire', direction: 'send', text: 'EHLO client.test' },
        'SMTP wire',
      ]);
    });
  });
});
