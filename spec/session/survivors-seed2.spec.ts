import { concatMap, filter, firstValueFrom, lastValueFrom, timeout } from 'rxjs';
import { SMTPInvalidArgumentError, SMTPNotSupportedError } from '../../lib/errors';
import { BodyEncoder } from '../../lib/wire/body-encoder';
import { ehlo$ } from '../../lib/session/ehlo';
import { data$, mail$, rcpt$ } from '../../lib/session/mail';
import { sendmail$ } from '../../lib/session/sendmail';
import { FakeServer } from '../helpers/fake-server';
import { fakeSessions, sessionOn } from '../helpers/session';

/*
 * Behaviours of lib/session/ that a second mutation sample (seed 2) found unpinned; each test fails
 * with its mutant planted. Every wait has a deadline; verdicts are decided by order.
 */

const DEADLINE = 5_000;
const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';

describe('lib/session survivors (seed 2)', () => {
  const bench = fakeSessions();

  it('sendmail$ on a session that has not greeted says EHLO before MAIL (smtplib ehlo_or_helo_if_needed)', async () => {
    const fake = await FakeServer.start({});
    try {
      const sent = await firstValueFrom(
        sessionOn(fake).pipe(
          concatMap((session) => sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE)),
          filter((e) => e.type === 'sent'),
          timeout(DEADLINE),
        ),
      );
      expect(sent.type).toBe('sent');
      expect(fake.session.commands[0]).toBe('EHLO client.test');
      expect(fake.session.commands[1]).toMatch(/^MAIL FROM:<a@x.test> SIZE=\d+$/);
    } finally {
      await fake.close();
    }
  });

  it('sendmail$ asked for SMTPUTF8 by a server that does not offer it refuses before writing MAIL', async () => {
    const session = await bench.open({});
    bench.fake.session.commands.length = 0;
    const err = await lastValueFrom(
      sendmail$(session, 'a@x.test', 'b@x.test', MESSAGE, { params: ['SMTPUTF8'] }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPNotSupportedError);
    expect((err as Error).message).toBe('SMTPUTF8 not supported by server');
    expect(bench.fake.session.commands).toEqual([]);
  });

  it('ehlo$ on a greeted session gives the reply it kept, line by line', async () => {
    const session = await bench.open({ extensions: ['PIPELINING', 'SIZE 1000'] });
    const { reply } = await lastValueFrom(ehlo$(session));
    expect(reply.code).toBe(250);
    expect(reply.lines.slice(1)).toEqual(['PIPELINING', 'SIZE 1000']);
    // Said once, when the session opened: the kept reply answers.
    expect(bench.fake.session.commands.filter((c) => c.startsWith('EHLO'))).toHaveLength(1);
  });

  it('BodyEncoder says why terminate without a final CRLF is refused', () => {
    expect(() => new BodyEncoder({ terminate: true, finalCrlf: false })).toThrow(
      new SMTPInvalidArgumentError('finalCrlf: false contradicts terminate: the final "." must start a line'),
    );
  });

  describe('the smtplib-style steps (mail$, data$)', () => {
    it('data$ names DATA on the refusal of DATA itself', async () => {
      const session = await bench.open({ handlers: { DATA: '554 5.5.1 no valid recipients' } });
      const err = await lastValueFrom(data$(session, MESSAGE)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_SMTP_DATA', smtpCode: 554, command: 'DATA' });
    });

    it('data$ left mid-body destroys the connection: the server must not read what follows as the message', async () => {
      const session = await bench.open({});
      await lastValueFrom(mail$(session, 'a@x.test'));
      await lastValueFrom(rcpt$(session, 'b@x.test'));
      let finish!: () => void;
      const rest = new Promise<void>((resolve) => (finish = resolve));
      async function* body(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('Subject: left\r\n\r\nfirst part\r\n');
        await rest;
      }
      const subscription = data$(session, body()).subscribe({ error: () => undefined });
      await bench.fake.until(() => bench.fake.text().includes('first part'));
      subscription.unsubscribe();
      finish();
      expect(session.connection.open).toBe(false);
      await bench.fake.closedSession();
      expect(bench.fake.session.messages).toEqual([]);
    });

    it('mail$ with SMTPUTF8 to a server that does not offer it refuses before writing MAIL', async () => {
      const session = await bench.open({});
      bench.fake.session.commands.length = 0;
      const err = await lastValueFrom(mail$(session, 'a@x.test', ['SMTPUTF8'])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SMTPNotSupportedError);
      expect((err as Error).message).toBe('SMTPUTF8 not supported by server');
      expect(bench.fake.session.commands).toEqual([]);
    });
  });
});
