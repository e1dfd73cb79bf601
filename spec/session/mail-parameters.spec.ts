/**
 * MAIL and RCPT parameters that must be checked before anything reaches the wire, and what the
 * caller is told when one is refused. Written against survivors of `npm run mutate:sample` (seed 1):
 * a valid `KEY=value` parameter must still pass, the NOTIFY grammar must hold at both ends, and
 * each refusal names what to do.
 */
import { SMTPInvalidArgumentError, SMTPNotSupportedError } from '../../lib/errors';
import { Session } from '../../lib/session/session';
import { rcpt$ } from '../../lib/session/mail';
import { sendmail$ } from '../../lib/session/sendmail';
import { FakeScript, FakeServer } from '../helpers/fake-server';
import { collect } from '../helpers/events';
import { lastValueFrom } from 'rxjs';
import { openSession } from '../helpers/session';

const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';

describe('MAIL and RCPT parameters', () => {
  let fake: FakeServer;
  let held: { close(): void } | undefined;
  afterEach(async () => {
    held?.close();
    held = undefined;
    await fake.close();
  });

  async function sessionWith(script: FakeScript): Promise<Session> {
    fake = await FakeServer.start(script);
    const opened = await openSession(fake.port, { timeout: 2000 });
    held = opened;
    fake.session.commands.length = 0;
    return opened.session;
  }

  it('sends a KEY=value parameter as given', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING'] });
    const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { params: ['X-TAG=a.b-1'] }));
    expect(error).toBeUndefined();
    expect(fake.session.commands[0]).toBe('MAIL FROM:<a@x.test> X-TAG=a.b-1');
  });

  it('sends RCPT with no parameter when none is given (rcpt$ on a session)', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING', 'DSN'] });
    const step = await lastValueFrom(rcpt$(session, 'b@x.test'));
    expect(step.reply.code).toBe(250);
    expect(fake.session.commands).toEqual(['RCPT TO:<b@x.test>']);
  });

  it('names a malformed parameter in its error', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING'] });
    const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { params: ['X=a=b'] }));
    expect(error).toBeInstanceOf(SMTPInvalidArgumentError);
    expect((error as Error).message).toBe('Not an ESMTP parameter: "X=a=b"');
    expect(fake.session.commands).toEqual([]);
  });

  it('names the parameter that holds a control character', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING'] });
    const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { params: ['X=1\r\nRSET'] }));
    expect((error as Error).message).toBe(
      'The ESMTP parameter contains a control character (0x0d) at offset 3; refusing to send it',
    );
    expect(fake.session.commands).toEqual([]);
  });

  it.each([[['NEVER', 'SUCCESS']], [['SUCCESS', 'NEVER']], [['SUCCESS', 'SOMETIMES']]])(
    'refuses NOTIFY=%j before anything is sent',
    async (notify) => {
      const session = await sessionWith({ extensions: ['PIPELINING', 'DSN'] });
      const to = [{ address: 'b@x.test', notify: notify as unknown as 'NEVER' }];
      const { error } = await collect(sendmail$(session, 'a@x.test', to, MESSAGE));
      expect(error).toBeInstanceOf(SMTPInvalidArgumentError);
      expect((error as Error).message).toBe(`Invalid NOTIFY value: ${JSON.stringify(notify.join(','))}`);
      expect(fake.session.commands).toEqual([]);
    },
  );

  it('refuses BODY=BINARYMIME without BINARYMIME and CHUNKING, saying which extensions it needs', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING', 'CHUNKING'] });
    const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { body: 'BINARYMIME' }));
    expect(error).toBeInstanceOf(SMTPNotSupportedError);
    expect((error as Error).message).toMatch(/BINARYMIME and CHUNKING extensions \(RFC 3030\)/);
    expect(fake.session.commands).toEqual([]);
  });

  it('says what REQUIRETLS needs when it is refused', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING', 'REQUIRETLS'] });
    const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { requireTls: true }));
    expect((error as Error).message).toMatch(/REQUIRETLS needs a TLS connection to a server that offers it/);
  });

  it('tells how to send UTF-8 header fields to a server without SMTPUTF8', async () => {
    const session = await sessionWith({ extensions: ['PIPELINING', '8BITMIME'] });
    const { error } = await collect(sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { smtputf8: true }));
    expect(error).toBeInstanceOf(SMTPNotSupportedError);
    expect((error as Error).message).toMatch(/encode them as RFC 2047 encoded-words/);
    expect(fake.session.commands).toEqual([]);
  });
});
