#!/usr/bin/env node
/**
 * `rx-smtp`: send, probe and bulk-send from a terminal. Written on the public API only
 * (`../index`), so it doubles as its fullest example.
 */
import { UsageError } from './args';
import { bulk, BULK_HELP } from './bulk';
import { EXIT, ExitCode, describe, exitCodeOf } from './exit';
import { Io, processIo } from './io';
import { probe, PROBE_HELP } from './probe';
import { send, SEND_HELP } from './send';

const COMMANDS: Record<string, (argv: readonly string[], io: Io) => Promise<ExitCode>> = { send, probe, bulk };

const HELP = `Usage: rx-smtp <command> [options]      (rx-smtp <command> --help for its options)

Commands:
  send    send one message; one line per recipient as each reply arrives
  probe   show what a server offers: greeting, EHLO capabilities, TLS, AUTH
  bulk    send a JSONL batch through a connection pool; resumable outcomes file

Server URLs: smtp://host[:port]  smtps://host[:port]  smtp+starttls://host[:port]
             lmtp://host[:port]  lmtp+unix:///path/to/socket   (user:password@ percent-encoded)

Exit codes: 0 all accepted, 1 some refused or failed, 2 usage error,
            3 could not connect / TLS / AUTH failed, 4 some message possibly delivered.

Examples:
${[SEND_HELP, PROBE_HELP, BULK_HELP].map(firstExample).join('\n')}`;

/** The first line under a command's "Examples:". */
function firstExample(help: string): string {
  return /Examples:\n(.*)/.exec(help)?.[1] ?? '';
}

/** Runs one command line; never throws. */
export async function main(argv: readonly string[], io: Io): Promise<ExitCode> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(HELP);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  try {
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)} (send, probe, bulk; rx-smtp --help)`);
    return await command(rest, io);
  } catch (err) {
    io.err(`rx-smtp: ${describe(err)}\n`);
    return exitCodeOf(err, false);
  }
}

if (require.main === module) {
  // process.exitCode, not process.exit(): standard output is flushed before the process ends.
  void main(process.argv.slice(2), processIo).then((code) => (process.exitCode = code));
}
