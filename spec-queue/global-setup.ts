import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT, startSuiteRedis } from './helpers/redis';

/**
 * Starts the suite's private redis-server, and compiles the worker process the crash tests start
 * (real child processes run JavaScript: build/spec-queue/).
 */
export default async function globalSetup(): Promise<void> {
  const redis = await startSuiteRedis();
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'spec-queue/tsconfig.worker.json')],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  process.stdout.write(`\nqueue suite: redis-server on 127.0.0.1:${redis.port}, data in build/queue-redis\n`);
}
