import * as fs from 'node:fs';
import * as path from 'node:path';
import { lastValueFrom } from 'rxjs';
import { RealServer, startSmtpServer } from '../spec/helpers/smtp-server';
import { MailQueue, MailWorker, QueueOutcome, QueueProgress, progress$, startWorker } from '../lib/queue';
import { collectOutcomes, connection, ids, message, queueName, recordingServer, until } from './helpers/queue';
import { ROOT } from './helpers/redis';
import { defined } from '../spec/helpers/defined';

const DEADLINE = 20_000;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function queue(what: string, options: Partial<ConstructorParameters<typeof MailQueue>[1]> = {}): MailQueue {
  const q = new MailQueue(queueName(what), { connection: connection(), ...options });
  cleanups.push(() => q.close());
  return q;
}

function worker(q: MailQueue, port: number, options: Partial<Parameters<typeof startWorker>[0]> = {}): MailWorker {
  const w = startWorker({
    queue: q.name,
    connection: connection(),
    pool: { host: '127.0.0.1', port, starttls: 'never', localHostname: 'worker.test', maxConnections: 2 },
    ...options,
  });
  cleanups.push(() => w.close());
  return w;
}

function outcomes(q: MailQueue): QueueOutcome[] {
  // A connection of its own (QueueEvents), not the producer's nor the worker's.
  const { outcomes: list, subscription } = collectOutcomes({ name: q.name, connection: connection() });
  cleanups.push(() => subscription.unsubscribe());
  return list;
}

/** smtp-server, closed after the workers (their pools' connections would keep it waiting). */
async function realServer(): Promise<RealServer> {
  const server = await startSmtpServer();
  cleanups.push(() => server.close());
  return server;
}

describe('rx-smtp/queue', () => {
  it('sends a queued message through a worker to smtp-server, and its outcome arrives on outcomes$ on another connection', async () => {
    const smtp = await realServer();
    const q = queue('functional');
    const seen = outcomes(q);
    const jobId = await lastValueFrom(q.add$(message('invoice-42', 'you@example.test')));
    expect(jobId).toBe('invoice-42');
    worker(q, smtp.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    const [outcome] = seen;
    expect(outcome).toMatchObject({
      status: 'sent',
      jobId: 'invoice-42',
      message: { id: 'invoice-42', from: 'sender@example.test', to: 'you@example.test' },
      reply: { code: 250 },
      refused: {},
      attempts: 1,
    });
    expect(outcome).not.toHaveProperty('message.body');
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]?.to).toEqual(['you@example.test']);
    expect(smtp.messages[0]?.body.toString()).toContain('Hello from invoice-42.');
    expect((await q.queue.getJob('invoice-42'))?.returnvalue).toEqual(outcome);
  });

  it('queues an id once: adding it again sends nothing more', async () => {
    const { server, accepted } = await recordingServer();
    cleanups.push(() => server.close());
    const q = queue('idempotent');
    const seen = outcomes(q);
    const first = await lastValueFrom(q.add$(message('once')));
    const again = await lastValueFrom(q.addBulk$([message('once'), message('other')]));
    expect([first, ...again]).toEqual(['once', 'once', 'other']);
    worker(q, server.port);
    await until(() => seen.length === 2, DEADLINE, 'two outcomes');
    const afterwards = await lastValueFrom(q.add$(message('once')));
    expect(afterwards).toBe('once');
    await new Promise((r) => setTimeout(r, 300));
    expect(accepted.map((a) => a.id).sort()).toEqual(['once', 'other']);
    expect(seen.map((o) => o.jobId).sort()).toEqual(['once', 'other']);
  });

  it.each([
    ['an address that could smuggle a command', { ...message('bad'), to: 'x@example.test>\r\nRSET' }, /address/],
    [
      'a stream for a body',
      { ...message('stream'), body: fs.createReadStream(__filename) as unknown as string },
      /\{ ref \}/,
    ],
    ['an integer id', { ...message('7'), id: '7' }, /integer/],
    ['an id with a colon', { ...message('a:b'), id: 'a:b' }, /':'/],
    ['no recipient', { ...message('none'), to: [] as unknown as string }, /non-empty/],
  ])('refuses %s before anything reaches Redis', async (_what, bad, why) => {
    const q = queue('refuse');
    await expect(lastValueFrom(q.add$(bad))).rejects.toMatchObject({
      code: 'ERR_SMTP_INVALID_ARGUMENT',
      message: expect.stringMatching(why),
    });
    await expect(lastValueFrom(q.addBulk$([message('fine'), bad]))).rejects.toMatchObject({
      code: 'ERR_SMTP_INVALID_ARGUMENT',
    });
    expect(await q.queue.count()).toBe(0);
  });

  it('fails a refused message for good: refused, one attempt, never retried', async () => {
    const { server } = await recordingServer(undefined, { RCPT: '550 5.1.1 <rcpt@example.test>: no such user' });
    cleanups.push(() => server.close());
    const q = queue('refused', { retry: { attempts: 3, backoffMs: 10 } });
    const seen = outcomes(q);
    await lastValueFrom(q.add$(message('nobody')));
    worker(q, server.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]).toMatchObject({
      status: 'refused',
      jobId: 'nobody',
      attempts: 1,
      error: { code: 'ERR_SMTP_RECIPIENTS_REFUSED', recipients: { 'rcpt@example.test': { code: 550 } } },
    });
    const job = await q.queue.getJob('nobody');
    expect(await job?.getState()).toBe('failed');
    expect(job?.attemptsMade).toBe(1);
    // The reason BullMQ keeps (dashboards show it) starts with a line for people.
    expect(job?.failedReason.split('\n')[0]).toBe(
      'refused: All recipients were refused: rcpt@example.test [ERR_SMTP_RECIPIENTS_REFUSED]',
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(server.sessions.flatMap((s) => s.commands).filter((c) => c.startsWith('RCPT'))).toHaveLength(1);
  });

  it("retries a transient failure after the queue's backoff, then sends it", async () => {
    let tries = 0;
    const { server, count } = await recordingServer(() =>
      ++tries === 1 ? '451 4.3.0 Local error in processing' : undefined,
    );
    cleanups.push(() => server.close());
    const q = queue('transient', { retry: { attempts: 3, backoffMs: 400 } });
    const seen = outcomes(q);
    await lastValueFrom(q.add$(message('later')));
    const started = Date.now();
    const w = worker(q, server.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]).toMatchObject({ status: 'sent', jobId: 'later', attempts: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    // The 451 came after the dot: the marker was cleared, so the retry was sent, not held back.
    expect(count('later')).toBe(2);
    const stats = await new Promise<{ sent: number; retried: number }>((resolve) => w.stats$.subscribe(resolve));
    expect(stats).toMatchObject({ sent: 1, retried: 1, failed: 0 });
  });

  it('fails a message whose transient failures outlast its attempts, with the last one', async () => {
    const { server, count } = await recordingServer(() => '451 4.3.0 Try again');
    cleanups.push(() => server.close());
    const q = queue('exhausted', { retry: { attempts: 2, backoffMs: 50 } });
    const seen = outcomes(q);
    await lastValueFrom(q.add$(message('never')));
    worker(q, server.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'ERR_SMTP_DATA', smtpCode: 451 } });
    expect(count('never')).toBe(2);
  });

  it("caps the retries' backoff at maxBackoffMs", async () => {
    const { server, accepted } = await recordingServer(() => '451 4.3.0 Try again');
    cleanups.push(() => server.close());
    const q = queue('capped', { retry: { attempts: 3, backoffMs: 300, maxBackoffMs: 400 } });
    const seen = outcomes(q);
    await lastValueFrom(q.add$(message('capped')));
    worker(q, server.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(accepted.length).toBeGreaterThanOrEqual(3);
    const [a = 0, b = 0, c = 0] = accepted.map((x) => x.at);
    expect(b - a).toBeGreaterThanOrEqual(300);
    // Uncapped, the second wait would be 600 ms.
    expect(c - b).toBeGreaterThanOrEqual(400);
    expect(c - b).toBeLessThan(590);
  });

  it('reads a body given by reference when it sends, and keeps it out of Redis', async () => {
    const smtp = await realServer();
    const dir = path.join(ROOT, 'build', 'queue-bodies');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'big.eml');
    const text = `Subject: by reference\r\n\r\n${'a line of a body kept on disk\r\n'.repeat(20_000)}`;
    fs.writeFileSync(file, text);
    const q = queue('ref');
    const seen = outcomes(q);
    await lastValueFrom(
      q.add$({ id: 'on-disk', from: 'sender@example.test', to: 'you@example.test', body: { ref: file } }),
    );
    expect((await q.queue.getJob('on-disk'))?.data.body).toEqual({ ref: file });
    worker(q, smtp.port, { spoolDir: dir });
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]?.status).toBe('sent');
    expect(smtp.messages[0]?.body.toString()).toBe(text);
  });

  it('refuses a reference outside the spool directory, and one to a worker without it, sending nothing', async () => {
    const smtp = await realServer();
    const dir = path.join(ROOT, 'build', 'queue-bodies');
    fs.mkdirSync(dir, { recursive: true });
    const q = queue('escape');
    const seen = outcomes(q);
    const job = (id: string, ref: string) => ({
      id,
      from: 'sender@example.test',
      to: 'you@example.test',
      body: { ref },
    });
    await lastValueFrom(
      q.addBulk$([job('climb', '../../package.json'), job('elsewhere', path.join(ROOT, 'package.json'))]),
    );
    worker(q, smtp.port, { spoolDir: dir });
    await until(() => seen.length === 2, DEADLINE, 'two outcomes');
    const q2 = queue('no-spool');
    const seen2 = outcomes(q2);
    await lastValueFrom(q2.add$(job('no-spool', path.join(dir, 'big.eml'))));
    worker(q2, smtp.port);
    await until(() => seen2.length === 1, DEADLINE, 'the outcome');
    for (const o of [...seen, ...seen2]) {
      expect(o).toMatchObject({ status: 'refused', attempts: 1 });
      expect(o.status === 'refused' && o.error.code).toBe('ERR_SMTP_INVALID_ARGUMENT');
    }
    expect(smtp.messages).toEqual([]);
  });

  it('sends bytes as they were given', async () => {
    const smtp = await realServer();
    const q = queue('bytes');
    const seen = outcomes(q);
    const bytes = Buffer.from('Subject: bytes\r\n\r\ncaf\xc3\xa9 \x01 end\r\n', 'latin1');
    await lastValueFrom(
      q.add$({ id: 'bytes', from: 'sender@example.test', to: 'you@example.test', body: new Uint8Array(bytes) }),
    );
    worker(q, smtp.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(smtp.messages[0]?.body.equals(bytes)).toBe(true);
  });

  it('close() lets the transaction in flight finish, then says QUIT', async () => {
    const { server, accepted } = await recordingServer(() => ({ delayMs: 600, reply: '250 2.0.0 Ok: queued' }));
    cleanups.push(() => server.close());
    const q = queue('close');
    const seen = outcomes(q);
    await lastValueFrom(q.add$(message('in-flight')));
    const w = startWorker({
      queue: q.name,
      connection: connection(),
      pool: { host: '127.0.0.1', port: server.port, starttls: 'never' },
    });
    await until(() => accepted.length === 1, DEADLINE, 'the final dot');
    await w.close();
    expect(server.session.commands).toContain('QUIT');
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    expect(seen[0]).toMatchObject({ status: 'sent', jobId: 'in-flight' });
  });

  it('counts what it ended in stats$', async () => {
    const { server } = await recordingServer((id) => (id.endsWith('2') ? '554 5.7.1 rejected' : undefined));
    cleanups.push(() => server.close());
    const q = queue('stats');
    const seen = outcomes(q);
    await lastValueFrom(q.addBulk$(ids(3).map((id) => message(id))));
    const w = worker(q, server.port);
    const last: { sent?: number; refused?: number } = {};
    const subscription = w.stats$.subscribe((s) => Object.assign(last, s));
    cleanups.push(() => subscription.unsubscribe());
    await until(() => seen.length === 3, DEADLINE, 'three outcomes');
    await until(() => last.sent === 2 && last.refused === 1, 2_000, 'the counters');
  });

  it("publishes each recipient's result as the job's progress, as they arrive", async () => {
    const { server } = await recordingServer(undefined, {
      RCPT: (line) => (line.includes('bad@') ? '550 5.1.1 no such user' : '250 2.1.5 Ok'),
    });
    cleanups.push(() => server.close());
    const q = queue('progress');
    const seen = outcomes(q);
    const progress: QueueProgress[] = [];
    const subscription = progress$({ name: q.name, connection: connection() }, { since: 'start' }).subscribe((p) =>
      progress.push(p),
    );
    cleanups.push(() => subscription.unsubscribe());
    await lastValueFrom(q.add$({ ...message('two'), to: ['good@example.test', 'bad@example.test'] }));
    worker(q, server.port);
    await until(() => seen.length === 1, DEADLINE, 'the outcome');
    await until(() => progress.length > 0, DEADLINE, 'progress');
    const last = progress[progress.length - 1];
    expect(last).toMatchObject({
      jobId: 'two',
      attempt: 1,
      recipients: [
        { type: 'recipient', recipient: 'good@example.test', accepted: true, reply: { code: 250 } },
        { type: 'recipient', recipient: 'bad@example.test', accepted: false, reply: { code: 550 } },
      ],
    });
    // The pipelined envelope's replies came in one read: one write to Redis.
    expect(progress).toHaveLength(1);
    expect((await q.queue.getJob('two'))?.progress).toEqual({ attempt: 1, recipients: last?.recipients });
    expect(seen[0]).toMatchObject({ status: 'sent', refused: { 'bad@example.test': { code: 550 } } });
  });

  // The server says "slow down" to the first message, then holds that message's second try until five other
  // messages have been accepted (or 20 s have passed). Without the pause the other worker delivers those five
  // while the throttled one waits: the hold ends by count. With it, nobody starts a job while the pause lasts.
  it.each([
    ['pauses every worker of the queue', { baseMs: 1500, maxMs: 1500 } as const],
    ['(without the pause, the other worker goes on)', false as const],
  ])("a server's 'slow down' to one worker %s", async (_what, throttlePause) => {
    let throttled: { id: string; at: number } | undefined;
    let others = 0;
    let releasedBy: 'count' | 'deadline' | undefined;
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const deadline = setTimeout(() => {
      releasedBy ??= 'deadline';
      release();
    }, 20_000);
    cleanups.push(() => clearTimeout(deadline));
    const { server, accepted } = await recordingServer((id) => {
      if (throttled === undefined) {
        throttled = { id, at: Date.now() };
        return '451 4.7.1 Throttling failure: Maximum sending rate exceeded';
      }
      if (id === throttled.id) return { after: held, reply: '250 2.0.0 Ok: queued' };
      if (++others === 5) {
        releasedBy ??= 'count';
        release();
      }
      return undefined;
    });
    cleanups.push(() => server.close());
    const q = queue('throttle');
    const seen = outcomes(q);
    await lastValueFrom(q.addBulk$(ids(40).map((id) => message(id))));
    const one = { maxConnections: 1, maxInFlightPerConnection: 1 };
    for (let i = 0; i < 2; i++)
      worker(q, server.port, {
        pool: { host: '127.0.0.1', port: server.port, starttls: 'never', ...one },
        throttlePause,
      });
    await until(() => seen.length === 40, DEADLINE, 'every outcome');
    const first = defined(throttled, 'the throttled message');
    if (throttlePause === false) {
      expect(releasedBy).toBe('count');
    } else {
      // The pause is 1.5 s of Redis time: inside it only the other worker's job already taken (and one it
      // took before the pause reached Redis) may end. A slow machine only delays work, so cannot add to it.
      const during = accepted.filter((a) => a.id !== first.id && a.at > first.at && a.at < first.at + 1400);
      expect(during.length).toBeLessThanOrEqual(2);
    }
    // The throttled message went again within its attempt: its own marker did not stop it.
    expect(seen.every((o) => o.status === 'sent')).toBe(true);
  });
});
