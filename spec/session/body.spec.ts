import { SendEvent, sendmail$ } from '../../lib/session/sendmail';
import { FakeServer } from '../helpers/fake-server';
import { collect } from '../helpers/events';
import { openSession } from '../helpers/session';

const LINES = 20_000;
/** Nine bytes, already canonical: what goes on the wire is exactly what the body yields. */
const LINE = Buffer.from('abcdefg\r\n');
const CHUNKING = { extensions: ['PIPELINING', 'CHUNKING', '8BITMIME', 'SIZE 100000000'] };
const NO_CHUNKING = { extensions: ['PIPELINING', '8BITMIME', 'SIZE 100000000'] };

describe('a streamed body', () => {
  let fake: FakeServer;
  let close: (() => void) | undefined;
  afterEach(async () => {
    close?.();
    close = undefined;
    await fake.close();
  });

  async function send(
    script: typeof CHUNKING,
    body: AsyncIterable<Uint8Array>,
  ): Promise<{ values: SendEvent[]; error?: unknown }> {
    fake = await FakeServer.start(script);
    const opened = await openSession(fake.port, { timeout: 5000 });
    close = opened.close;
    return collect(sendmail$(opened.session, 'a@x.test', 'b@x.test', body));
  }

  /** A fast source: every chunk is ready at once (each `next()` resolves without waiting). */
  async function* tiny(onLine: (index: number) => void = () => undefined): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < LINES; i++) {
      onLine(i);
      yield LINE;
    }
  }

  it('of many tiny chunks goes as few BDAT chunks of up to 64 KiB, byte for byte', async () => {
    const { error } = await send(CHUNKING, tiny());
    expect(error).toBeUndefined();
    const bdats = fake.session.commands.filter((c) => c.startsWith('BDAT'));
    // 180,000 bytes: ceil(180000 / 65536) = 3 chunks, plus one for a boundary that does not fit.
    expect(bdats.length).toBeLessThanOrEqual(4);
    expect(bdats[bdats.length - 1]).toMatch(/ LAST$/);
    expect(fake.session.messages.every((m) => m.length <= 64 * 1024)).toBe(true);
    expect(Buffer.concat(fake.session.messages).equals(Buffer.concat(Array.from({ length: LINES }, () => LINE)))).toBe(
      true,
    );
  });

  it.each([
    ['DATA', NO_CHUNKING],
    ['BDAT', CHUNKING],
  ])('lets the event loop turn while a fast source is written (%s)', async (_verb, script) => {
    // A check-phase callback (what timers and other sockets need: a turn of the loop) is
    // scheduled again each time it ran; the body notes the longest run of lines it yielded
    // without the loop turning.
    let turned = false;
    let turns = 0;
    const tick = (): void => {
      turned = true;
      turns++;
    };
    let since = 0;
    let longest = 0;
    const body = tiny(() => {
      if (turned) {
        turned = false;
        since = 0;
        setImmediate(tick);
      }
      longest = Math.max(longest, ++since);
    });
    setImmediate(tick);
    const { error } = await send(script, body);
    expect(error).toBeUndefined();
    expect(longest).toBeLessThanOrEqual(1024);
    expect(turns).toBeGreaterThanOrEqual(LINES / 1024);
  });

  it('sends what a slow source gave without waiting for more', async () => {
    // Each line is yielded only once the server has the previous one: holding bytes back would deadlock.
    const received = (text: string): boolean => Buffer.concat(fake.session.bytes).includes(text);
    async function* slow(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 3; i++) {
        if (i > 0) await fake.until(() => received(`line ${i - 1}\r\n`), 5000);
        yield Buffer.from(`line ${i}\r\n`);
      }
    }
    const { error } = await send(NO_CHUNKING, slow());
    expect(error).toBeUndefined();
    expect(fake.session.messages[0]?.toString()).toBe('line 0\r\nline 1\r\nline 2\r\n');
  });
});
