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
    const pool = new SMTPPool({ host: '127.0.0.1', port, localHostname: 'client.test', starttls: 'never', timeout: 5_000, ...config });
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
export const verbs = (commands: readonly string[]): string[] => commands.map((c) => c.split(' ')[0].toUpperCase());

/** Polls until `condition` holds (for state on the pool's side: no event to wait on). */
export async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 2));
}
