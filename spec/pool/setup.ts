import { SMTPPool, PoolConfig } from '../../lib/pool/pool';
import { FakeScript, FakeServer } from '../helpers/fake-server';

export const BODY = 'Subject: hi\r\n\r\nHello.\r\n';

/**
 * Servers and pools of one test, torn down after it: every pool is destroyed
 * (a no-op after a close) and every server closed, so no handle outlives the test.
 */
export class Bench {
  private readonly pools: SMTPPool[] = [];
  private readonly servers: { close(): Promise<void> }[] = [];

  async fake(script: FakeScript = {}): Promise<FakeServer> {
    const fake = await FakeServer.start(script);
    this.servers.push(fake);
    return fake;
  }

  /** A pool on 127.0.0.1:`port` with short timeouts and no STARTTLS. */
  pool(port: number, config: PoolConfig = {}): SMTPPool {
    const pool = new SMTPPool({
      host: '127.0.0.1',
      port,
      localHostname: 'client.test',
      starttls: 'never',
      timeout: 5_000,
      ...config,
    });
    this.pools.push(pool);
    return pool;
  }

  adopt(server: { close(): Promise<void> }): void {
    this.servers.push(server);
  }

  async tearDown(): Promise<void> {
    for (const pool of this.pools.splice(0)) pool.destroy();
    for (const server of this.servers.splice(0)) await server.close();
  }
}

/** The verbs a fake session received, e.g. ['EHLO', 'MAIL', 'RCPT', 'DATA', 'QUIT']. */
export const verbs = (commands: readonly string[]): string[] =>
  commands.map((c) => c.replace(/ .*/s, '').toUpperCase());

/** How long `until` polls before it fails the test: well under jest's testTimeout, so its message is the one seen. */
export const UNTIL_MS = 5_000;

/**
 * Polls until `condition` holds (for state on the pool's side: no event to wait on). Gives up
 * after `ms` with an error naming the condition, so a pool regression fails the test instead of
 * polling on after jest gave up (a live timer keeps `npm test` and CI from exiting).
 */
export async function until(condition: () => boolean, ms = UNTIL_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() >= deadline) throw new Error(`until: not met within ${ms} ms: ${condition.toString()}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
