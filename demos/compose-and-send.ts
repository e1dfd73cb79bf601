/**
 * A message built by the ecosystem's best-known MIME composer, sent with its
 * envelope read from its own headers: nodemailer's MailComposer streams the
 * message, `sendMessage$` reads the recipients from To, Cc and Bcc, removes the
 * Bcc field from the bytes it sends, and streams the rest to an embedded SMTP
 * server on 127.0.0.1. Nothing leaves the machine.
 *
 *   tsc -p tsconfig.demos.json && node build/demos/demos/compose-and-send.js
 */
import { AddressInfo } from 'node:net';
import MailComposer from 'nodemailer/lib/mail-composer';
import { SMTPServer } from 'smtp-server';
import { finalize, lastValueFrom, tap } from 'rxjs';
import { SendEvent, sendMessage$, withSession$ } from '../lib';

interface Received {
  readonly from: string;
  readonly to: readonly string[];
  readonly header: string;
}

async function main(): Promise<void> {
  const received: Received[] = [];
  const server = await startServer(received);
  const { port } = server.server.address() as AddressInfo;
  console.log(`embedded SMTP server on 127.0.0.1:${port}\n`);

  const mail = new MailComposer({
    from: 'Ada Lovelace <ada@example.test>',
    to: 'Charles Babbage <charles@example.test>',
    cc: ['"Somerville, Mary" <mary@example.test>'],
    bcc: 'Augustus De Morgan <augustus@example.test>',
    subject: 'Notes on the Analytical Engine',
    text: 'Note G is attached.\n',
    attachments: [{ filename: 'note-g.txt', content: 'Bernoulli numbers, step by step.\n' }],
  }).compile();
  // nodemailer leaves Bcc out of the bytes unless asked; keep it, as a message handed over raw may have it.
  mail.keepBcc = true;
  const composed = (await mail.build()).toString('utf8'); // only to show what goes in; what is sent is streamed
  console.log(`the composed message has ${composed.match(/^Bcc: .*$/m)?.[0] ?? 'no Bcc field'}\n`);

  const config = { host: '127.0.0.1', port, localHostname: 'demo.local', starttls: 'never' as const };
  const run$ = withSession$(config, (session) =>
    sendMessage$(session, mail.createReadStream()).pipe(tap((event) => print(event))),
  ).pipe(finalize(() => server.close()));
  await lastValueFrom(run$);

  for (const { from, to, header } of received) {
    console.log(`\nthe server got MAIL FROM:<${from}>, RCPT TO: ${to.map((a) => `<${a}>`).join(' ')}`);
    console.log('and this header block (no Bcc field):\n');
    console.log(
      header
        .split('\r\n')
        .map((line) => `  | ${line}`)
        .join('\n'),
    );
    if (/^bcc:/im.test(header)) throw new Error('the Bcc field reached the server');
  }
}

function print(event: SendEvent): void {
  switch (event.type) {
    case 'recipient':
      console.log(
        `  ${event.recipient} ${event.accepted ? 'accepted' : 'REFUSED'} (${event.reply.code} ${event.reply.message})`,
      );
      break;
    case 'progress':
      console.log(`  ${event.bytesSent} bytes written`);
      break;
    case 'sent':
      console.log(`  sent (${event.reply.code} ${event.reply.message})`);
      break;
    default:
      break;
  }
}

/** smtp-server on loopback, recording each message's envelope and header block. */
async function startServer(received: Received[]): Promise<SMTPServer> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          header: text.slice(0, text.indexOf('\r\n\r\n')),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
