/**
 * The live delivery-progress page: an embedded SMTP server, a pool sending to
 * it, and a page on 127.0.0.1 that shows each recipient's fate as it arrives.
 *
 *   npm run demo:web            (PORT=8025 npm run demo:web for a fixed port)
 */
import { startDemo } from './server';

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 0);
  if (!(Number.isInteger(port) && port >= 0 && port < 65536))
    throw new Error(`PORT must be a port number, got ${process.env.PORT ?? ''}`);
  const demo = await startDemo({ port });
  console.log(`rx-smtp web demo on ${demo.url} (embedded SMTP server on 127.0.0.1:${demo.mail.port}); Ctrl-C stops it`);
  process.once('SIGINT', () => void demo.close().then(() => process.exit(0)));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
