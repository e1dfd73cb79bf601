import * as net from 'node:net';
import { lastValueFrom, timeout, toArray } from 'rxjs';
import { withSession$ } from '../../lib/session/open-session';
import { sendmail$ } from '../../lib/session/sendmail';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
/** A reader that never came back would hold the test: past this lead (or after a pause) it reads again. */
const RESUME_AT = 40 * MiB;
const PAUSE_MS = 500;

/**
 * A server that stops reading after its 354: how far ahead of it does the client take the body? Only
 * the socket (its high-water mark) and the kernel's loopback buffers may stand between the two.
 */
async function pausingServer(): Promise<{
  server: net.Server;
  port: number;
  received: () => number;
  resume: () => void;
}> {
  let received = 0;
  let paused: net.Socket | undefined;
  let timer: NodeJS.Timeout | undefined;
  const resume = (): void => {
    clearTimeout(timer);
    paused?.resume();
    paused = undefined;
  };
  const server = net.createServer((socket) => {
    let data = false;
    let tail = '';
    let partial = '';
    socket.write('220 flow.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      if (data) {
        received += chunk.length;
        tail = (tail + chunk.subarray(-5).toString('latin1')).slice(-5);
        if (tail === '\r\n.\r\n') {
          data = false;
          socket.write('250 2.0.0 Ok\r\n');
        }
        return;
      }
      // A command may arrive in pieces: only whole lines are answered.
      const lines = (partial + chunk.toString('latin1')).split('\r\n');
      partial = lines.pop() ?? '';
      for (const line of lines.filter(Boolean)) {
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-flow.test\r\n250 8BITMIME\r\n');
        else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
        else if (verb === 'DATA') {
          data = true;
          socket.write('354 go on\r\n');
          socket.pause();
          paused = socket;
          timer = setTimeout(resume, PAUSE_MS);
        } else socket.write('250 2.0.0 Ok\r\n');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, received: () => received, resume };
}

describe('a streamed body to a server that stops reading', () => {
  it('is taken from its source only as fast as the socket drains', async () => {
    const fake = await pausingServer();
    let lead = 0;
    async function* body(): AsyncGenerator<Uint8Array> {
      const chunk = Buffer.alloc(64 * 1024, 'a line of text\r\n');
      for (let taken = 0; taken < SIZE; taken += chunk.length) {
        const ahead = taken - fake.received();
        lead = Math.max(lead, ahead);
        if (ahead >= RESUME_AT) fake.resume();
        yield chunk;
      }
    }
    try {
      const events = await lastValueFrom(
        withSession$({ host: '127.0.0.1', port: fake.port, starttls: 'never', localHostname: 'c.test' }, (s) =>
          sendmail$(s, 'a@x.test', 'b@x.test', body()),
        ).pipe(timeout(30_000), toArray()),
      );
      expect(events[events.length - 1]).toMatchObject({ type: 'sent' });
      expect(fake.received()).toBe(SIZE + '.\r\n'.length);
      // Without the socket's back-pressure the whole body would be read while the server pauses.
      expect(lead).toBeLessThan(16 * MiB);
    } finally {
      fake.resume();
      await new Promise((resolve) => fake.server.close(resolve));
    }
  }, 60_000);
});
