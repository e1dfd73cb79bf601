import { stopRedis, suiteRedis } from './helpers/redis';

/** Stops the suite's redis-server, whatever the tests did. */
export default async function globalTeardown(): Promise<void> {
  await stopRedis(suiteRedis(), false);
}
