import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { SMTPInvalidArgumentError, SMTPNotSupportedError } from '../errors';
import { checkArgument } from '../wire/command';
import { DOT_ATOM, parseMailbox, quoteString } from './address-list';

/** An address as it goes between the angle brackets of `MAIL FROM:` or `RCPT TO:`. */
export interface WireMailbox {
  /** The path with its brackets: `<local@domain>`, `<"quoted local"@domain>`, or `<>`. */
  readonly wire: string;
  /** True when the path holds UTF-8, so MAIL FROM must carry `SMTPUTF8` (RFC 6531 §3.4). */
  readonly needsSmtputf8: boolean;
}

export interface MailboxOptions {
  /** The server offered SMTPUTF8 (RFC 6531): a UTF-8 local part may be sent. */
  readonly smtputf8: boolean;
}

/**
 * Checks an address against RFC 5321 §4.1.2 and writes it as a path for `MAIL FROM:<…>` or
 * `RCPT TO:<…>`.
 *
 * Accepted: an addr-spec, or an RFC 5322 mailbox (`Name <a@b>`, comments around) as smtplib's
 * `quoteaddr` accepts, of which only the addr-spec is kept. The local part is sent as a
 * Dot-string when it is one, else as a Quoted-string (`"` and `\` escaped); the domain as
 * ASCII (a non-ASCII domain becomes its UTS-46 A-labels, which needs no SMTPUTF8); an address
 * literal must be IPv4 or `IPv6:`.
 *
 * Refused, so that no argument can smuggle ESMTP parameters or reroute the message:
 * - control characters anywhere, TAB included (so no CR or LF, even quoted);
 * - `<` and `>` anywhere, even quoted. RFC 5321 allows `"a@x> ORCPT=rfc822;b"@d`, and it is
 *   unambiguous, but a server that takes the path up to the first `>` (and some do) would read
 *   `ORCPT=rfc822;b"@d>` as a parameter. No real mailbox needs an angle bracket; refusing it
 *   costs nothing and shuts that door. (A quoted blank, as in `"john smith"@x`, is kept: a
 *   server that splits at blanks finds no closing `>` and refuses the command.)
 * - a source route (`<@a,@b:c@d>`): RFC 5321 §4.1.2 says SHOULD NOT generate, and dropping it
 *   silently would send somewhere other than the caller wrote.
 * - anything that is not exactly one mailbox.
 *
 * @param address the address, as the caller or the headers gave it.
 * @param opts.smtputf8 whether the server offered SMTPUTF8.
 * @return the path and whether it needs SMTPUTF8.
 * @throws SMTPInvalidArgumentError for an address that cannot be sent safely.
 * @throws SMTPNotSupportedError for a UTF-8 local part when `opts.smtputf8` is false.
 *
 * @example
 * mailboxForWire('Joe <joe@bücher.example>', { smtputf8: false }).wire // '<joe@xn--bcher-kva.example>'
 * mailboxForWire('"x@evil"@good', { smtputf8: false }).wire // '<"x@evil"@good>'
 */
export function mailboxForWire(address: string, opts: MailboxOptions): WireMailbox {
  // The common case, an ASCII Dot-string at an ASCII host name, is its own wire form: skip the
  // RFC 5322 parser, which costs more than the rest of a transaction's preparation. A-labels
  // (`xn--`) still go through UTS-46 below.
  if (PLAIN_ADDRESS.test(address) && !/xn--/i.test(address)) return { wire: `<${address}>`, needsSmtputf8: false };
  checkArgument(address, 'address');
  if (address.includes('\t')) throw invalid(address, 'contains a TAB');
  const spec = parseMailbox(address);
  if (!spec) throw invalid(address, 'is not a mailbox (RFC 5321 §4.1.2)');
  if (spec.routed) throw invalid(address, 'has a source route; give the final mailbox only');
  // The domain cannot hold them (checked below against the grammar); a display name is dropped.
  if (/[<>]/.test(spec.local))
    throw invalid(address, "has '<' or '>' in its local part, which could end the path early");
  const local = localPartForWire(address, spec.local);
  const needsSmtputf8 = /[^\x00-\x7f]/.test(local);
  if (needsSmtputf8 && !opts.smtputf8) {
    throw new SMTPNotSupportedError(
      `The address ${JSON.stringify(address)} has a non-ASCII local part, and the server does not support SMTPUTF8`,
    );
  }
  return { wire: `<${local}@${domainForWire(address, spec.domain)}>`, needsSmtputf8 };
}

const ATEXT = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]+";
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const PLAIN_ADDRESS = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*@${LABEL}(?:\\.${LABEL})*$`);

/**
 * The reverse path for `MAIL FROM:`: the null path `<>` for `''` or `'<>'` (RFC 5321 §4.5.5:
 * bounces and other notifications), else {@link mailboxForWire}.
 */
export function reversePathForWire(address: string, opts: MailboxOptions): WireMailbox {
  return address.trim() === '' || address.trim() === '<>'
    ? { wire: '<>', needsSmtputf8: false }
    : mailboxForWire(address, opts);
}

/** RFC 5321 §4.1.2 Local-part = Dot-string / Quoted-string; RFC 6531 §3.3 adds UTF-8 to both. */
function localPartForWire(address: string, local: string): string {
  if (local === '') throw invalid(address, 'has an empty local part');
  // qtextSMTP and quoted-pairSMTP: printable ASCII (and UTF-8); no control character of any set.
  if (/[\p{Cc}\p{Cs}]/u.test(local)) throw invalid(address, 'has a control character in its local part');
  return DOT_ATOM.test(local) ? local : quoteString(local);
}

/** RFC 5321 §4.1.2 Domain / address-literal, non-ASCII domains as A-labels (RFC 5890). */
function domainForWire(address: string, domain: string): string {
  if (domain.startsWith('[')) return addressLiteral(address, domain);
  // UTS-46 also vets ASCII names (a bad `xn--` label); an ASCII name keeps its case on the wire.
  const converted = domainToASCII(domain);
  const ascii = converted && /^[\x00-\x7f]*$/.test(domain) ? domain : converted;
  // sub-domain = Let-dig [Ldh-str]: letters, digits and inner hyphens, dot-separated.
  const subDomain = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
  if (!ascii || !ascii.split('.').every((label) => subDomain.test(label))) {
    throw invalid(address, 'has an invalid domain');
  }
  return ascii;
}

function addressLiteral(address: string, literal: string): string {
  const inner = literal.slice(1, -1);
  const ipv6 = /^IPv6:(.*)$/i.exec(inner);
  if (ipv6 ? isIPv6(ipv6[1] ?? '') : isIPv4(inner)) return literal;
  // RFC 5321 §4.1.3 General-address-literal needs a registered tag; none is registered.
  throw invalid(address, 'has an address literal that is neither IPv4 nor IPv6');
}

function invalid(address: string, problem: string): SMTPInvalidArgumentError {
  return new SMTPInvalidArgumentError(`The address ${JSON.stringify(address)} ${problem}; refusing to send it`);
}
