import { ObservableNotification, config, firstValueFrom, lastValueFrom, timeout } from 'rxjs';
import { SMTPException } from '../../lib/errors';
import { SmtpConnection, Turn } from '../../lib/transport/connection';
import { DebugEvent, redactSecrets } from '../../lib/transport/debug';
import { Mutex } from '../../lib/transport/mutex';
import { command } from '../../lib/wire/command';
import { Reply } from '../../lib/wire/reply';
import { fakeConnections } from '../helpers/connect';
import { collect } from '../helpers/events';
import { FakeScript } from '../helpers/fake-server';

/* Conditions and defaults of lib/transport/ that the seed-2 mutation sample found unpinned (second sweep). */

const NOOP = command('NOOP');

/** The debug$ events of a connection from now on, as "direction text". */
function recordDebug(connection: SmtpConnection): string[] {
  const events: string[] = [];
  connection.debug$.subscribe((e: DebugEvent) => events.push(`${e.direction} ${e.text}`));
  return events;
}

/** Takes the connection's turn now (it must be free) and keeps it until `release()`. */
function takeTurn(connection: SmtpConnection): Turn {
  let taken: Turn | undefined;
  connection.turn((turn) => (taken = turn));
  if (!taken) throw new Error('the turn was not free');
  return taken;
}

const closed = (connection: SmtpConnection): Promise<void> =>
  lastValueFrom(connection.closed$, { defaultValue: undefined });

/** debug$'s first line, which every subscriber gets. */
const CONNECTED = expect.stringMatching(/^info connected to 127\.0\.0\.1:\d+$/) as string;

/**
 * Keeps the event loop busy until `performance.now()` reaches `until`: what a CPU-bound callback
 * does to every timer, which then fires late. The deadline tests below rest on it, not on how long
 * anything takes: a timer that is overdue fires before any socket is read again.
 */
function blockUntil(until: number): void {
  while (performance.now() < until) {
    // spin
  }
}

describe('lib/transport survivors (seed 2, second sweep)', () => {
  const bench = fakeConnections();
  const open = async (script: FakeScript = {}): Promise<SmtpConnection> => (await bench.open(script)).connection;

  describe('the default reply deadline', () => {
    it('waits for a reply that takes a while when no timeout is given (RFC 5321 §4.5.3.2: minutes)', async () => {
      const connection = await open({ handlers: { NOOP: { delayMs: 300, reply: '250 2.0.0 late' } } });
      const reply = await firstValueFrom(connection.request$(NOOP));
      expect(reply).toMatchObject({ code: 250, message: '2.0.0 late' });
      expect(connection.alive).toBe(true);
    });
  });

  describe('reply deadlines when the event loop was blocked', () => {
    it('gives a reply its whole time, even where a timer left from an earlier reply is overdue', async () => {
      const connection = await open();
      // Its deadline sets the connection's timer, which stays behind once the reply is in.
      // Both times are the loopback fake's whole margin to answer, so they are generous; the spin below
      // costs their sum.
      const [firstMs, secondMs] = [1_000, 1_000];
      const written = performance.now();
      expect(await firstValueFrom(connection.request$(NOOP, { timeout: firstMs }))).toMatchObject({ code: 250 });
      // Long enough that the leftover timer is overdue by more than the next reply's whole time.
      blockUntil(written + firstMs + secondMs + 50);
      const reply = await firstValueFrom(connection.request$(NOOP, { step: 'second', timeout: secondMs }));
      expect(reply).toMatchObject({ code: 250 });
    });

    it("does not restart the awaited reply's time when more requests are written behind it", async () => {
      const connection = await open();
      connection.allowPipelining(true);
      const first = firstValueFrom(connection.request$(NOOP, { step: 'first', timeout: 300 })).catch((e: unknown) => e);
      // The first reply's time runs out before anything can be read; then a second request goes out.
      blockUntil(performance.now() + 350);
      const second = firstValueFrom(connection.request$(NOOP, { step: 'second', timeout: 5_000 })).catch(
        (e: unknown) => e,
      );
      const err = await first;
      expect(err).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'first' });
      expect(await second).toBe(err);
      expect(connection.failure).toBe(err);
    });
  });

  describe('graceful close', () => {
    it('takes the close that follows a 221 as graceful, even while another caller holds the turn', async () => {
      const connection = await open();
      const replies = collect(connection.replies$);
      const bye = firstValueFrom(connection.quit$());
      // Queued behind QUIT: it gets the turn as soon as QUIT is written, and keeps it.
      let other: Turn | undefined;
      connection.turn((turn) => (other = turn));
      expect(await bye).toMatchObject({ code: 221 });
      await closed(connection);
      expect(connection.failure).toBeNull();
      expect(await replies).toEqual({ values: [expect.objectContaining({ code: 221 })] });
      other?.release();
    });

    it('ends our side once when end() is called twice, and says so on debug$', async () => {
      const connection = await open();
      const events = recordDebug(connection);
      connection.end();
      connection.end();
      // The server sees our FIN (a deadline of its own), then closes its side.
      await bench.fake.closedSession();
      await closed(connection);
      expect(events.filter((e) => e.startsWith('info '))).toEqual([CONNECTED, 'info closing', 'info closed']);
      expect(connection.failure).toBeNull();
    });

    it('does not end a connection that failed while end() waited for its turn', async () => {
      const connection = await open();
      const events = recordDebug(connection);
      const turn = takeTurn(connection);
      connection.end();
      const cause = new SMTPException('gone meanwhile');
      connection.destroy(cause);
      turn.release();
      await closed(connection);
      expect(events.filter((e) => e.startsWith('info '))).toEqual([CONNECTED, 'info closed']);
      expect(connection.failure).toBe(cause);
    });

    it('says QUIT once when closeWhenIdle() is called twice, and closes gracefully', async () => {
      const connection = await open();
      connection.closeWhenIdle(5_000);
      connection.closeWhenIdle(5_000);
      await closed(connection);
      expect(bench.fake.session.commands).toEqual(['QUIT']);
      expect(connection.failure).toBeNull();
    });

    it('fails a connection the server closes while nothing is owed and no close was asked for', async () => {
      const connection = await open({ handlers: { NOOP: { close: true, reply: '250 2.0.0 Ok, and bye' } } });
      const replies = collect(connection.replies$);
      expect(await firstValueFrom(connection.request$(NOOP))).toMatchObject({ code: 250 });
      await closed(connection);
      expect(connection.failure).toMatchObject({
        code: 'ERR_SMTP_SERVER_DISCONNECTED',
        message: 'Connection unexpectedly closed',
      });
      expect((await replies).error).toBe(connection.failure);
    });

    it('fails a connection the server closes on QUIT without answering it', async () => {
      const connection = await open({ handlers: { QUIT: { close: true } } });
      const err = await firstValueFrom(connection.quit$()).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_SMTP_SERVER_DISCONNECTED', message: 'Connection unexpectedly closed' });
      await closed(connection);
      expect(connection.failure).toBe(err);
    });
  });

  describe('STARTTLS only upgrades on its own 220', () => {
    it('stays in plaintext after a refused STARTTLS and goes on reading replies', async () => {
      const connection = await open({ handlers: { STARTTLS: '454 4.7.0 TLS not available' } });
      const refusal = await firstValueFrom(connection.starttls$({}, 5_000));
      expect(refusal).toMatchObject({ code: 454, message: '4.7.0 TLS not available' });
      expect(await firstValueFrom(connection.request$(NOOP))).toMatchObject({ code: 250 });
      expect(connection.secure).toBe(false);
      expect(connection.alive).toBe(true);
    });

    it('aborts on a malformed line right after the 220, as on any byte after it', async () => {
      const connection = await open({ handlers: { STARTTLS: { raw: '220 2.0.0 Ready\r\nnot a reply\r\n' } } });
      const err = await firstValueFrom(connection.starttls$({}, 5_000)).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'ERR_SMTP_PROTOCOL',
        message: 'Data received after the STARTTLS 220 reply (possible injection); aborting',
      });
      await closed(connection);
      expect(connection.failure).toBe(err);
    });

    it('destroys the connection when the caller leaves in the middle of the handshake', async () => {
      // A 220 and then no handshake: the server waits for a ClientHello it never answers.
      const connection = await open({ handlers: { STARTTLS: { raw: '220 2.0.0 Ready\r\n' } } });
      const events = recordDebug(connection);
      const subscription = connection.starttls$({}, 60_000).subscribe({ error: () => undefined });
      // The reply is handed on (and the handshake started) right after its debug event.
      await new Promise<void>((resolve) => {
        connection.debug$.subscribe((e) => e.text.startsWith('220') && queueMicrotask(resolve));
      });
      subscription.unsubscribe();
      // Neither plaintext nor TLS any more: the socket goes (the server sees it closed, within its deadline).
      await bench.fake.closedSession();
      await closed(connection);
      expect(connection.failure).toMatchObject({
        code: 'ERR_SMTP_SERVER_DISCONNECTED',
        message: 'Connection closed by the client',
      });
      expect(events).toContain('receive 220 2.0.0 Ready');
    });

    it('takes a 220 to another command as a reply like any other', async () => {
      let noops = 0;
      const connection = await open({
        handlers: { NOOP: () => (++noops === 1 ? '220 2.0.0 odd but fine' : '250 2.0.0 Ok') },
      });
      expect(await firstValueFrom(connection.request$(NOOP))).toMatchObject({ code: 220 });
      expect(await firstValueFrom(connection.request$(NOOP))).toMatchObject({ code: 250 });
      expect(connection.alive).toBe(true);
    });
  });

  describe('lockstep without PIPELINING', () => {
    it('holds the next command until every reply of a group is in, not just the first', async () => {
      const connection = await open();
      const events = recordDebug(connection);
      const mailRcpt = [command('MAIL', ['FROM:<a@example.com>']), command('RCPT', ['TO:<b@example.com>'])];
      const group = collect(connection.request$(mailRcpt));
      const noop = firstValueFrom(connection.request$(NOOP));
      await bench.fake.received('NOOP');
      expect((await group).values.map((r: Reply) => r.code)).toEqual([250, 250]);
      expect(await noop).toMatchObject({ code: 250 });
      expect(events).toEqual([
        CONNECTED,
        'send MAIL FROM:<a@example.com>',
        'send RCPT TO:<b@example.com>',
        'receive 250 2.1.0 Ok',
        'receive 250 2.1.5 Ok',
        'send NOOP',
        'receive 250 2.0.0 Ok',
      ]);
    });
  });

  describe('held groups without PIPELINING', () => {
    it('writes the group after one that draws no reply, instead of holding it for a reply that never comes', async () => {
      const connection = await open();
      const noop = firstValueFrom(connection.request$(NOOP));
      // Held behind NOOP's reply: bytes that draw none, then a command that does.
      const silent = lastValueFrom(
        connection.request$({ bytes: Buffer.alloc(0), replies: 0, debugText: '(nothing)' }),
        { defaultValue: 'none' },
      );
      const help = firstValueFrom(connection.request$(command('HELP')).pipe(timeout(5_000)));
      expect(await noop).toMatchObject({ code: 250 });
      expect(await silent).toBe('none');
      await bench.fake.received('HELP');
      expect(await help).toMatchObject({ code: 214 });
    });
  });

  describe('a subscriber that left', () => {
    // RxJS reports a notification sent to a subscriber that already left, from a timer of its own.
    let stray: ObservableNotification<unknown>[];
    beforeEach(() => {
      stray = [];
      config.onStoppedNotification = (notification) => stray.push(notification);
    });
    afterEach(() => {
      config.onStoppedNotification = null;
    });
    /** A timer queued after whatever RxJS queued so far: its reports are in by then. */
    const timersRun = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));

    it('gets nothing from a request it left before the reply came', async () => {
      const connection = await open();
      connection.request$(NOOP).subscribe().unsubscribe();
      // Replies come in order: once the next request has its reply, the one left behind was read.
      // (lastValueFrom: firstValueFrom leaves at the reply, before the completion that follows it.)
      expect(await lastValueFrom(connection.request$(NOOP))).toMatchObject({ code: 250 });
      await timersRun();
      expect(stray).toEqual([]);
    });

    it('gets nothing from a QUIT it left before the 221 came, and the connection still closes', async () => {
      const connection = await open();
      connection.quit$().subscribe().unsubscribe();
      await closed(connection);
      await timersRun();
      expect(stray).toEqual([]);
      expect(bench.fake.session.commands).toEqual(['QUIT']);
      expect(connection.failure).toBeNull();
    });
  });

  describe('a request that draws no reply', () => {
    it('is written and completes at once, without a value', async () => {
      const connection = await open();
      const bytes = Buffer.from('NOOP\r\n');
      const seen: string[] = [];
      // The channel is free: the bytes go out within subscribe(), and nothing is owed for them.
      connection.request$({ bytes, replies: 0, debugText: '<raw NOOP>' }).subscribe({
        next: (reply) => seen.push(`reply ${reply.code}`),
        complete: () => seen.push('complete'),
      });
      expect(seen).toEqual(['complete']);
      expect(connection.inFlight).toBe(0);
      await bench.fake.received('NOOP');
      expect(bench.fake.text()).toBe('NOOP\r\n');
    });
  });

  describe('a turn', () => {
    it('refuses to write once it was released', async () => {
      const connection = await open();
      const turn = takeTurn(connection);
      turn.release();
      expect(() => turn.write(Buffer.from('late\r\n'))).toThrow(
        new SMTPException('rx-smtp: a write after the turn was released'),
      );
      expect(() => turn.request(NOOP, {}, { reply: () => undefined, error: () => undefined })).toThrow(
        'rx-smtp: a write after the turn was released',
      );
    });
  });
});

describe('redactSecrets', () => {
  it('ignores an empty secret (it would otherwise match between every two characters)', () => {
    expect(redactSecrets('535 5.7.8 bad credentials c2VjcmV0', ['', 'c2VjcmV0'])).toBe(
      '535 5.7.8 bad credentials ****',
    );
    expect(redactSecrets('250 ok', [''])).toBe('250 ok');
  });
});

describe('Mutex', () => {
  it('leaves the other waiters queued when a wait is cancelled twice', () => {
    const mutex = new Mutex();
    const order: string[] = [];
    let releaseFirst: (() => void) | undefined;
    mutex.acquire((release) => {
      order.push('first');
      releaseFirst = release;
    });
    const cancelSecond = mutex.acquire(() => order.push('second'));
    mutex.acquire((release) => {
      order.push('third');
      release();
    });
    cancelSecond();
    cancelSecond();
    releaseFirst?.();
    expect(order).toEqual(['first', 'third']);
    expect(mutex.busy).toBe(false);
  });
});
