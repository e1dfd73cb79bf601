/**
 * The main job, end to end, on this machine only: starts an embedded SMTP
 * server on 127.0.0.1, sends a small batch of messages over one pipelined
 * session, and prints each recipient's result as it arrives.
 *
 *   npm run demo
 */
import { SMTPServer } from 'smtp-server';
import { AddressInfo } from 'node:net';
import { concatMap, finalize, from, lastValueFrom, tap } from 'rxjs';
import { SendEvent, sendmail$, withSession$ } from '../lib';

const messages = [
  { to: ['ada@example.test', 'grace@example.test'], subject: 'Pipelines' },
  { to: ['linus@example.test', 'nobody@example.test'], subject: 'Streams' },
  { to: ['margaret@example.test'], subject: 'Apollo' },
];

async function main(): Promise<void> {
  const server = await startServer();
  const { port } = server.server.address() as AddressInfo;
  console.log(`embedded SMTP server on 127.0.0.1:${port}\n`);

  const config = { host: '127.0.0.1', port, localHostname: 'demo.local', starttls: 'never' as const };
  // mergeMap would stack the transactions on the one pipelined connection; concatMap keeps the output readable.
  const run$ = withSession$(config, (session) =>
    from(messages).pipe(
      concatMap(({ to, subject }) =>
        sendmail$(session, 'demo@example.test', to, `Subject: ${subject}\r\n\r\nSent by rx-smtp.\r\n`).pipe(
          tap((event) => print(subject, event)),
        ),
      ),
    ),
  ).pipe(finalize(() => server.close()));
  await lastValueFrom(run$);
}

function print(subject: string, event: SendEvent): void {
  switch (event.type) {
    case 'recipient':
      console.log(
        `  ${subject}: ${event.recipient} ${event.accepted ? 'accepted' : 'REFUSED'} (${event.reply.code} ${event.reply.message})`,
      );
      break;
    case 'progress':
      console.log(`  ${subject}: ${event.bytesSent} bytes written`);
      break;
    case 'sent':
      console.log(`  ${subject}: sent (${event.reply.code} ${event.reply.message})\n`);
      break;
    default:
      break;
  }
}

/** smtp-server on loopback: refuses nobody@, keeps nothing. */
async function startServer(): Promise<SMTPServer> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('nobody@')) {
        callback(Object.assign(new Error('5.1.1 No such user here'), { responseCode: 550 }));
      } else callback();
    },
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => callback());
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
