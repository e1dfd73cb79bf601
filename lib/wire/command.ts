import { SMTPInvalidArgumentError } from '../errors';

/** One SMTP command line, validated and ready for the wire. */
export interface Command {
  /** The verb as sent (`EHLO`, `MAIL`, …), for timeouts and error messages. */
  readonly verb: string;
  /** The whole line without its CRLF. */
  readonly line: string;
  /** What `debug$` and errors show instead of `line` (AUTH payloads are redacted). */
  readonly debugText: string;
}

// RFC 5321 §2.3.8 / §4.1.1: a command ends at CRLF, so no argument may hold CR or LF;
// NUL and the other C0 controls have no business in a command either. TAB is allowed.
const FORBIDDEN = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Checks that `value` can be put inside a command line.
 *
 * @param value the argument as the caller gave it.
 * @param what what the argument is, for the error message (`"host name"`, `"address"`).
 * @return `value`, unchanged.
 * @throws SMTPInvalidArgumentError naming the argument and the offending character.
 */
export function checkArgument(value: string, what: string): string {
  if (typeof value !== 'string') {
    throw new SMTPInvalidArgumentError(`The ${what} must be a string, not ${typeof value}`);
  }
  const bad = FORBIDDEN.exec(value);
  if (bad) {
    const hex = bad[0].charCodeAt(0).toString(16).padStart(2, '0');
    throw new SMTPInvalidArgumentError(
      `The ${what} contains a control character (0x${hex}) at offset ${bad.index}; refusing to send it`,
    );
  }
  return value;
}

/**
 * Builds a command from a verb and its arguments, each validated.
 *
 * @param verb the SMTP verb, verbatim.
 * @param args the arguments; empty ones are left out.
 * @param options.secret true when the arguments must not be shown (AUTH).
 * @return the command.
 * @throws SMTPInvalidArgumentError before anything is written.
 *
 * @example
 * command('MAIL', 'FROM:<a@example.com>', 'SIZE=1024').line // 'MAIL FROM:<a@example.com> SIZE=1024'
 */
export function command(verb: string, args: readonly string[] = [], options: { secret?: boolean } = {}): Command {
  checkArgument(verb, 'command verb');
  if (!VERB.test(verb)) {
    throw new SMTPInvalidArgumentError(`Not a command verb: ${JSON.stringify(verb)}`);
  }
  let line = verb;
  for (const [i, arg] of args.entries()) {
    // The argument's description is only built for the error (commands are built per message).
    if (typeof arg !== 'string' || FORBIDDEN.test(arg)) checkArgument(arg, `argument ${i + 1} of ${verb}`);
    if (arg !== '') line += ` ${arg}`;
  }
  return { verb: verb.toUpperCase(), line, debugText: options.secret ? `${verb} ****` : line };
}

const VERB = /^[A-Za-z][A-Za-z0-9-]*$/;

/** The bytes of commands on the wire, in one buffer (a pipelined group leaves in one write). */
export function encodeCommands(commands: readonly Command[]): Buffer {
  let text = '';
  for (const cmd of commands) text += `${cmd.line}\r\n`;
  return Buffer.from(text, 'utf8');
}
