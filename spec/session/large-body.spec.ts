import { createHash } from 'node:crypto';
import { lastValueFrom, toArray } from 'rxjs';
import { withSession$ } from '../../lib/session/open-session';
import { SendEvent, sendmail$ } from '../../lib/session/sendmail';
import { startSmtpServer, RealServer } from '../helpers/smtp-server';

const MiB = 1024 * 1024;
const SIZE = 96 * MiB;

/** SIZE bytes of text lines, made on demand; a line starting with "." every so often. */
async function* generated(onChunk: (taken: number) => void): AsyncGenerator<Uint8Array> {
  const line = Buffer.from('.a line of body text that is exactly sixty-four bytes long.....\n');
  const chunk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < chunk.length; i += line.length) line.copy(chunk, i);
  for (let sent = 0; sent < SIZE; sent += chunk.length) {
    onChunk(sent);
    yield Buffer.from(chunk);
  }
}

describe('a large streamed body', () => {
  let real: RealServer;
  afterEach(() => real.close());

  it('streams 96 MiB with flat memory (never read far ahead of the server) and arrives intact', async () => {
    let received = 0;
    const hash = createHash('sha256');
    real = await startSmtpServer({
      disabledCommands: ['STARTTLS'],
      size: 0,
      onData(stream, _session, callback) {
        stream.on('data', (c: Buffer) => {
          received += c.length;
          hash.update(c);
        });
        stream.on('end', () => callback());
      },
    });
    // What the client holds is what it took from the body and the server has not received yet
    // (counted in bytes of the body: the server's copy has one CR more per 64-byte line). Unlike
    // a memory delta, this does not depend on when the garbage collector runs.
    let aheadPeak = 0;
    const sample = (taken: number): void => {
      aheadPeak = Math.max(aheadPeak, taken - (received * 64) / 65);
    };
    const events = await lastValueFrom(
      withSession$({ host: '127.0.0.1', port: real.port, starttls: 'never', localHostname: 'c.test' }, (s) =>
        sendmail$(s, 'a@x.test', 'b@x.test', generated(sample)),
      ).pipe(toArray()),
    );
    const sent = events[events.length - 1] as Extract<SendEvent, { type: 'sent' }>;
    expect(sent.type).toBe('sent');
    // The server un-stuffs dots and keeps CRLF: each 64-byte line arrives as 64 bytes + CR.
    expect(received).toBe(SIZE + SIZE / 64);
    const expected = createHash('sha256');
    const line = Buffer.from('.a line of body text that is exactly sixty-four bytes long.....\r\n');
    const block = Buffer.concat(Array.from({ length: 1024 }, () => line));
    for (let i = 0; i < SIZE / 64 / 1024; i++) expected.update(block);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.length).toBeGreaterThan(100);
    // Buffering the body would read all 96 MiB ahead; streaming holds a few socket buffers (the
    // kernel's loopback buffers can take a few MiB).
    expect(aheadPeak).toBeLessThan(16 * MiB);
  }, 120_000);
});
