import { Subject, lastValueFrom, timeout } from 'rxjs';
import { SMTPDataError, SMTPServerDisconnected } from '../../lib/errors';
import { SaslMechanism } from '../../lib/auth/mechanism';
import { auth$ } from '../../lib/session/authenticate';
import { progress$ } from '../../lib/session/body';
import { data$, mail$ } from '../../lib/session/mail';
import { SendEvent, sendmail$ } from '../../lib/session/sendmail';
import { exchange$ } from '../../lib/session/session';
import { command } from '../../lib/wire/command';
import { fakeSessions } from '../helpers/session';

/*
 * Behaviours of lib/session/ that the seed-3 mutation sample found unpinned; each test fails with
 * its mutant planted. Every wait has a deadline; a hang shows as rxjs's TimeoutError, never as a pass.
 */

const DEADLINE = 5_000;
const MESSAGE = 'Subject: hi\r\n\r\nHello.\r\n';

/** What `promise` rejected with (failing the test when it resolves). */
const rejection = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );

/** Every event of `events$`, or the error it ends with, under the deadline. */
async function outcome(events$: ReturnType<typeof sendmail$>): Promise<{ values: SendEvent[]; error?: unknown }> {
  const values: SendEvent[] = [];
  return new Promise((resolve) => {
    events$.pipe(timeout(DEADLINE)).subscribe({
      next: (event) => values.push(event),
      error: (error: unknown) => resolve({ values, error }),
      complete: () => resolve({ values }),
    });
  });
}

describe('lib/session survivors (seed 3)', () => {
  const bench = fakeSessions();

  it('mail$ without options writes MAIL FROM:<…> and nothing after it', async () => {
    const session = await bench.open({});
    await lastValueFrom(mail$(session, 'a@x.test').pipe(timeout(DEADLINE)));
    expect(bench.fake.session.commands.at(-1)).toBe('MAIL FROM:<a@x.test>');
  });

  it('data$ refused at DATA keeps the connection: no body was started, so nothing needs cutting', async () => {
    const session = await bench.open({ handlers: { DATA: '554 5.5.1 no valid recipients' } });
    const err = await rejection(lastValueFrom(data$(session, MESSAGE).pipe(timeout(DEADLINE))));
    expect(err).toBeInstanceOf(SMTPDataError);
    expect(err).toMatchObject({ smtpCode: 554 });
    // The same connection still answers.
    const reply = await lastValueFrom(exchange$(session, command('NOOP')).pipe(timeout(DEADLINE)));
    expect(reply.code).toBe(250);
    expect(bench.fake.session.closed).toBe(false);
  });

  it('without PIPELINING, a server that closes on DATA ends the transaction as a disconnect', async () => {
    const session = await bench.open({ extensions: ['8BITMIME'], handlers: { DATA: { close: true } } });
    const { error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], MESSAGE));
    expect(error).toBeInstanceOf(SMTPServerDisconnected);
    expect(bench.fake.session.commands).toEqual(expect.arrayContaining(['MAIL FROM:<a@x.test>', 'DATA']));
  });

  it('every recipient refused, DATA 354, and the server closes on the lone dot: the transaction still ends', async () => {
    const session = await bench.open({
      handlers: { RCPT: '550 5.1.1 no such user', '.': { close: true } },
    });
    const { values, error } = await outcome(sendmail$(session, 'a@x.test', ['b@x.test'], MESSAGE));
    // Not rxjs's TimeoutError: the lone dot's failure settled the transaction.
    expect(error).toBeInstanceOf(SMTPServerDisconnected);
    expect(values.filter((e) => e.type === 'recipient')).toHaveLength(1);
    expect(bench.fake.session.messages).toEqual([Buffer.alloc(0)]);
  });

  it('a mechanism that cancels shows "*" on debug$, as sent (RFC 4954 §4)', async () => {
    const session = await bench.open({
      extensions: ['PIPELINING', 'AUTH X'],
      handlers: { AUTH: '334 Y2hhbGxlbmdl', '*': '501 5.7.0 cancelled' },
    });
    const cancelling: SaslMechanism = {
      name: 'X',
      initialResponse: () => null,
      respond: () => {
        throw new Error('the challenge makes no sense');
      },
      finish: () => undefined,
    };
    bench.fake.session.commands.length = 0;
    const sent: string[] = [];
    session.connection.debug$.subscribe((e) => e.direction === 'send' && sent.push(e.text));
    const err = await rejection(
      lastValueFrom(auth$(session, cancelling, { allowPlaintextAuth: true }).pipe(timeout(DEADLINE))),
    );
    expect(err).toMatchObject({ message: 'the challenge makes no sense' });
    expect(bench.fake.session.commands).toEqual(['AUTH X', '*']);
    expect(sent).toEqual(['AUTH X', '*']);
  });

  describe('progress$: one event per 256 KiB written, as it is written, and the total at the end', () => {
    const KiB = 1024;
    /** Feeds `sizes`, noting after each one (and after completing) which events have arrived. */
    function feed(sizes: number[]): string[] {
      const sizes$ = new Subject<number>();
      const seen: string[] = [];
      progress$(sizes$).subscribe({
        next: (e) => seen.push(e.type === 'progress' ? `progress ${e.bytesSent}` : e.type),
        complete: () => seen.push('complete'),
      });
      for (const n of sizes) {
        sizes$.next(n);
        seen.push(`wrote ${n}`);
      }
      sizes$.complete();
      return seen;
    }

    it('reports the first 256 KiB as soon as they are written, and not again at the end', () => {
      expect(feed([256 * KiB])).toEqual([`progress ${256 * KiB}`, `wrote ${256 * KiB}`, 'complete']);
    });

    it('small chunks: an event each time another 256 KiB has gone, then the total', () => {
      const w = `wrote ${100 * KiB}`;
      expect(feed(Array.from({ length: 7 }, () => 100 * KiB))).toEqual([
        w,
        w,
        `progress ${300 * KiB}`,
        w,
        w,
        w,
        `progress ${600 * KiB}`,
        w,
        w,
        `progress ${700 * KiB}`,
        'complete',
      ]);
    });
  });
});
