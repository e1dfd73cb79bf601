import { of } from 'rxjs';
import { Session, withSession$ } from '../index';
import { SERVER_HELP, SERVER_OPTIONS, parse } from './args';
import { EXIT, ExitCode, describe, exitCodeOf } from './exit';
import { Io, dialogueLine, each, replyText } from './io';
import { sessionConfig } from './server';

const OPTIONS = { ...SERVER_OPTIONS, dialogue: { type: 'boolean' } } as const;

export const PROBE_HELP = `Usage: rx-smtp probe --server URL [options]

Connects, reads the greeting, says EHLO, upgrades with STARTTLS when offered (or as --starttls says),
logs in when credentials are given, and prints what the server offers: its greeting, EHLO
capabilities, the TLS protocol, cipher and certificate (subject, expiry), and AUTH mechanisms.
Then QUIT. Nothing is sent.

  --dialogue                print the SMTP dialogue on standard error (AUTH redacted)

${SERVER_HELP}

Exit codes: 0 probed, 2 usage error, 3 could not connect / TLS / AUTH failed.

Examples:
  rx-smtp probe -s smtp://mail.example.com
  rx-smtp probe -s smtps://mail.example.com --json
  rx-smtp probe -s smtp+starttls://localhost:2525 --ca ca.pem --dialogue`;

/** What `probe` found out. */
interface Findings {
  readonly greeting: string | null;
  readonly esmtp: boolean;
  readonly capabilities: Readonly<Record<string, string>>;
  readonly tls: ReturnType<Session['connection']['tlsInfo']> | null;
  readonly auth: readonly string[];
  readonly authenticated: string | null;
}

/** `rx-smtp probe`. */
export async function probe(argv: readonly string[], io: Io): Promise<ExitCode> {
  const flags = parse(argv, OPTIONS);
  if (flags.help) {
    io.out(PROBE_HELP);
    return EXIT.ok;
  }
  const config = sessionConfig(flags, io.env);
  const debug = flags.dialogue ? (e: Parameters<typeof dialogueLine>[0]) => io.err(dialogueLine(e)) : undefined;
  try {
    await each(
      withSession$({ ...config, debug }, (session) => of(findings(session))),
      (found) => (flags.json ? io.out(JSON.stringify(found)) : report(found, io)),
    );
    return EXIT.ok;
  } catch (err) {
    io.err(`rx-smtp: ${describe(err)}\n`);
    // A probe has nothing to send: whatever fails, fails the session.
    return exitCodeOf(err, false);
  }
}

function findings(session: Session): Findings {
  return {
    greeting: session.greeting && replyText(session.greeting),
    esmtp: session.doesEsmtp,
    capabilities: session.esmtpFeatures,
    tls: session.connection.tlsInfo() ?? null,
    auth: (session.esmtpFeatures.auth ?? '').split(/\s+/).filter(Boolean),
    authenticated: session.authenticatedAs,
  };
}

function report(found: Findings, io: Io): void {
  io.out(`greeting      ${found.greeting ?? '(none)'}`);
  io.out(`esmtp         ${found.esmtp ? 'yes' : 'no (HELO)'}`);
  const { tls } = found;
  io.out(
    tls
      ? `tls           ${tls.protocol} ${tls.cipher}; certificate ${tls.subject}, expires ${tls.validTo}`
      : 'tls           none (plaintext)',
  );
  const loggedIn = found.authenticated ? ` (logged in with ${found.authenticated})` : '';
  io.out(`auth          ${found.auth.join(' ') || 'none offered'}${loggedIn}`);
  io.out('capabilities');
  for (const [name, value] of Object.entries(found.capabilities))
    io.out(`  ${`${name.toUpperCase()} ${value.trim()}`.trim()}`);
}
