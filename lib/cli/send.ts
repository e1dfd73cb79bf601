import { Observable } from 'rxjs';
import { SendEvent, Session, sendMessage$, sendmail$, withSession$ } from '../index';
import { SERVER_HELP, SERVER_OPTIONS, UsageError, Values, parse, required } from './args';
import { EXIT, ExitCode, describe, exitCodeOf } from './exit';
import { Io, dialogueLine, each, replyText } from './io';
import { composeMessage } from './message';
import { readFile, sessionConfig } from './server';

const OPTIONS = {
  ...SERVER_OPTIONS,
  from: { type: 'string', short: 'f' },
  to: { type: 'string', short: 't', multiple: true },
  cc: { type: 'string', multiple: true },
  bcc: { type: 'string', multiple: true },
  subject: { type: 'string' },
  header: { type: 'string', multiple: true },
  body: { type: 'string' },
  'body-file': { type: 'string' },
  eml: { type: 'string' },
  dialogue: { type: 'boolean' },
} as const;

export const SEND_HELP = `Usage: rx-smtp send --server URL --from ADDR --to ADDR [options]

Sends one message and prints each recipient's reply as it arrives (✓ accepted, ✗ refused),
the body's progress when it is large, and the server's verdict.

Message options:
  -f, --from ADDR           envelope sender and From: (with --eml: overrides the envelope sender)
  -t, --to ADDR             a recipient (repeat for more)
  --cc ADDR, --bcc ADDR     more recipients (Bcc: is never written into the message)
  --subject TEXT            the Subject: field
  --header 'Name: value'    an extra header field (repeat for more)
  --body TEXT | --body-file PATH
                            the plain-text body
  --eml PATH | --eml -      send this RFC 5322 message as is (- reads standard input);
                            recipients default to its To/Cc/Bcc, the sender to its From
  --dialogue                print the SMTP dialogue on standard error (AUTH redacted)

${SERVER_HELP}

Exit codes: 0 all accepted, 1 some recipient or the message refused, 2 usage error,
3 could not connect / TLS / AUTH failed, 4 possibly delivered (connection lost after the body).

Examples:
  rx-smtp send -s smtp://localhost:2525 -f me@example.com -t you@example.com --subject hi --body 'Hello'
  RX_SMTP_PASSWORD=… rx-smtp send -s smtp+starttls://mail.example.com:587 --auth-user me@example.com \\
      -f me@example.com -t you@example.com --body-file note.txt
  rx-smtp send -s smtps://mail.example.com --eml message.eml --json
  cat message.eml | rx-smtp send -s lmtp+unix:///run/dovecot/lmtp --eml - --dialogue`;

/** Bodies from this size on get progress lines. */
const PROGRESS_FROM = 1 << 20;

/** `rx-smtp send`. */
export async function send(argv: readonly string[], io: Io): Promise<ExitCode> {
  const flags = parse(argv, OPTIONS);
  if (flags.help) {
    io.out(SEND_HELP);
    return EXIT.ok;
  }
  const config = sessionConfig(flags, io.env);
  const { work, size } = transaction(flags);
  const printer = flags.json ? jsonPrinter(io) : humanPrinter(io, size);
  let ready = false;
  const events$ = withSession$(
    { ...config, debug: flags.dialogue ? (e) => io.err(dialogueLine(e)) : undefined },
    (session) => {
      ready = true;
      return work(session);
    },
  );
  try {
    await each(events$, printer.event);
    return printer.verdict();
  } catch (err) {
    printer.error(err);
    io.err(`rx-smtp: ${describe(err)}\n`);
    return exitCodeOf(err, ready);
  }
}

type Flags = Values<typeof OPTIONS>;

/** What to send, decided from the flags before anything connects. */
function transaction(flags: Flags): { work: (session: Session) => Observable<SendEvent>; size: number } {
  const sources = (['body', 'body-file', 'eml'] as const).filter((f) => flags[f] !== undefined);
  if (sources.length > 1)
    throw new UsageError(`give one of --body, --body-file, --eml (not ${sources.map((s) => `--${s}`).join(' and ')})`);
  const recipients = [...(flags.to ?? []), ...(flags.cc ?? []), ...(flags.bcc ?? [])];
  if (flags.eml !== undefined) {
    const eml = readFile(flags.eml, 'eml');
    return {
      work: (s) => sendMessage$(s, eml, flags.from, recipients.length ? recipients : undefined),
      size: eml.length,
    };
  }
  const from = required(flags.from, 'from');
  if (!flags.to?.length) throw new UsageError('--to is required');
  const text =
    flags['body-file'] !== undefined ? readFile(flags['body-file'], 'body-file').toString('utf8') : (flags.body ?? '');
  const message = composeMessage({
    from,
    to: flags.to,
    cc: flags.cc,
    subject: flags.subject,
    headers: flags.header,
    text,
  });
  return { work: (s) => sendmail$(s, from, recipients, message), size: Buffer.byteLength(message) };
}

interface Printer {
  readonly event: (event: SendEvent) => void;
  readonly error: (err: unknown) => void;
  readonly verdict: () => ExitCode;
}

/** One line per recipient as its reply arrives, progress in tenths for big bodies, the verdict. */
function humanPrinter(io: Io, size: number): Printer {
  let refused = false;
  let tenths = 0;
  return {
    event(event): void {
      switch (event.type) {
        case 'recipient':
          refused ||= !event.accepted;
          return io.out(`${event.accepted ? '✓' : '✗'} ${event.recipient}  ${replyText(event.reply)}`);
        case 'progress': {
          if (size < PROGRESS_FROM) return;
          const now = Math.floor((10 * event.bytesSent) / size);
          // Wire bytes: line ends and dot-stuffing make them a little more than the message's size.
          if (now > tenths) io.out(`… ${event.bytesSent} bytes sent (~${Math.min((tenths = now) * 10, 100)}%)`);
          return;
        }
        case 'delivery':
          refused ||= !event.delivered;
          return io.out(`${event.delivered ? '✓' : '✗'} ${event.recipient}  delivered? ${replyText(event.reply)}`);
        case 'sent': {
          const n = Object.keys(event.refused).length;
          return io.out(`sent: ${replyText(event.reply)}${n ? ` (${n} recipient${n > 1 ? 's' : ''} refused)` : ''}`);
        }
      }
    },
    error: () => undefined,
    verdict: () => (refused ? EXIT.refused : EXIT.ok),
  };
}

/** The `sendmail$` events as JSON lines, and a last `{ type: 'error' }` line when it failed. */
function jsonPrinter(io: Io): Printer {
  let refused = false;
  return {
    event(event) {
      if (event.type === 'recipient') refused ||= !event.accepted;
      if (event.type === 'delivery') refused ||= !event.delivered;
      io.out(JSON.stringify(event));
    },
    error(err) {
      const e = err as { code?: string; message?: string };
      io.out(JSON.stringify({ type: 'error', code: e.code, message: e.message }));
    },
    verdict: () => (refused ? EXIT.refused : EXIT.ok),
  };
}
