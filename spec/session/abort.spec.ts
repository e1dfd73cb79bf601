import { NEVER, lastValueFrom, take } from 'rxjs';
import { session$, withSession$ } from '../../lib';
import { FakeServer } from '../helpers/fake-server';

describe('SessionConfig.signal (AbortSignal for Promise users)', () => {
  let fake: FakeServer;
  afterEach(() => fake.close());

  it('an aborted signal errors with its reason before anything is connected', async () => {
    fake = await FakeServer.start();
    const signal = AbortSignal.abort(new Error('shutting down'));
    await expect(lastValueFrom(session$({ host: '127.0.0.1', port: fake.port, signal }))).rejects.toThrow(
      'shutting down',
    );
    // A session on the same server afterwards is its first connection.
    await lastValueFrom(session$({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' }).pipe(take(1)));
    expect(fake.sessions).toHaveLength(1);
  });

  it('aborting a ready, idle session says QUIT and rejects with the reason', async () => {
    fake = await FakeServer.start();
    const controller = new AbortController();
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    const config = { host: '127.0.0.1', port: fake.port, localHostname: 'c.test', signal: controller.signal };
    const done = lastValueFrom(withSession$(config, () => (ready(), NEVER))).catch((e: unknown) => e);
    await isReady;
    controller.abort();
    expect(await done).toBe(controller.signal.reason);
    await fake.closedSession();
    expect(fake.session.commands).toEqual(['EHLO c.test', 'QUIT']);
  });

  it('aborting before the session is ready destroys the connection', async () => {
    fake = await FakeServer.start({ greeting: null });
    const controller = new AbortController();
    const done = lastValueFrom(session$({ host: '127.0.0.1', port: fake.port, signal: controller.signal })).catch(
      (e: unknown) => e,
    );
    await fake.until(() => fake.sessions.length === 1);
    controller.abort();
    expect(await done).toMatchObject({ name: 'AbortError' });
    await fake.closedSession();
    expect(fake.session.commands).toEqual([]);
  });
});
