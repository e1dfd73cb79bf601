/**
 * A loopback TCP proxy that delays every chunk by `delayMs` in each direction: a 2×delay round
 * trip without netem. Order is kept (timers of equal delay fire in order); a side that falls
 * behind pauses the other (backpressure), so memory stays bounded.
 *
 *   node build/bench/bench/proxy.js LISTEN_PORT TARGET_PORT [DELAY_MS]   (prints "ready PORT")
 */
import * as net from 'node:net';

const HIGH_WATER = 4 * 1024 * 1024;

function delayed(from: net.Socket, to: net.Socket, delayMs: number): void {
  let queued = 0;
  from.on('data', (chunk: Buffer) => {
    queued += chunk.length;
    if (queued > HIGH_WATER) from.pause();
    setTimeout(() => {
      queued -= chunk.length;
      const flushed = to.destroyed || to.write(chunk);
      if (queued <= HIGH_WATER && flushed) from.resume();
      else if (!flushed) to.once('drain', () => from.resume());
    }, delayMs);
  });
  // The end travels after the last delayed chunk.
  from.on('end', () => setTimeout(() => to.end(), delayMs + 1));
  from.on('error', () => to.destroy());
  from.on('close', () => setTimeout(() => to.destroy(), delayMs + 5));
}

export function startProxy(listenPort: number, targetPort: number, delayMs: number): net.Server {
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    upstream.setNoDelay(true);
    delayed(client, upstream, delayMs);
    delayed(upstream, client, delayMs);
  });
  server.listen(listenPort, '127.0.0.1', () =>
    process.stdout.write(`ready ${(server.address() as net.AddressInfo).port}\n`),
  );
  return server;
}

if (require.main === module) {
  startProxy(Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4] ?? 5));
}
