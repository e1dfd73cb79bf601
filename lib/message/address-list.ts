import emailAddresses = require('email-addresses');
import { SMTPInvalidArgumentError } from '../errors';

type ASTNode = emailAddresses.ASTNode;

/** An addr-spec taken out of a header or an argument: local part and domain, unquoted. */
export interface AddrSpec {
  /** The local part's meaning: quotes, escapes and comments removed (`"a\"b"` → `a"b`). */
  readonly local: string;
  /** The domain as written, comments and blanks removed (a domain literal keeps its brackets). */
  readonly domain: string;
  /** True when the address was written with a source route (`<@a,@b:c@d>`), which was dropped. */
  readonly routed: boolean;
}

// RFC 6532 §3.2 allows UTF-8 in headers; display names are never decoded (RFC 2047 encoded
// words are plain atoms to the grammar): they never reach the envelope.
const PARSE_OPTIONS = { rfc6532: true, simple: false, rejectTLD: false } as const;

/**
 * Every mailbox of an RFC 5322 address list, group members included, in order.
 *
 * @param value an unfolded header value (`To`, `Cc`, …), or a lone mailbox.
 * @param what what is parsed, for the error message (`"To header"`).
 * @return the mailboxes; none for an empty value or an empty group (`undisclosed-recipients:;`).
 * @throws SMTPInvalidArgumentError when the value is not an address list: guessing at a
 *   malformed list could mail the wrong person, so nothing is sent.
 */
export function parseAddressList(value: string, what: string): AddrSpec[] {
  if (value.trim() === '') return []; // RFC 5322 §3.6.3: `Bcc:` may be empty
  const parsed = emailAddresses({ ...PARSE_OPTIONS, input: value, startAt: 'address-list' });
  if (!parsed) throw new SMTPInvalidArgumentError(`The ${what} is not a valid address list: ${JSON.stringify(value)}`);
  return parsed.addresses
    .flatMap((entry) => (entry.type === 'group' ? entry.addresses : [entry]))
    .map((mailbox) => addrSpecOf(mailbox.parts.local, mailbox.parts.domain, mailbox.node));
}

/**
 * One RFC 5322 mailbox: an addr-spec or `Display Name <addr-spec>`, comments allowed around.
 *
 * @return the addr-spec, or undefined when `value` is not exactly one mailbox.
 */
export function parseMailbox(value: string): AddrSpec | undefined {
  const parsed = emailAddresses({ ...PARSE_OPTIONS, input: value, startAt: 'mailbox' });
  const mailbox = parsed?.addresses[0];
  if (!parsed || mailbox?.type !== 'mailbox') return undefined;
  return addrSpecOf(mailbox.parts.local, mailbox.parts.domain, parsed.ast);
}

/** `local@domain` written back as an RFC 5322 addr-spec: the local part quoted when it must be. */
export function formatAddrSpec({ local, domain }: AddrSpec): string {
  return `${DOT_ATOM.test(local) ? local : quoteString(local)}@${domain}`;
}

/**
 * RFC 5322 §3.2.3 dot-atom text, the same as RFC 5321 §4.1.2 Dot-string; RFC 6531/6532 add any
 * non-ASCII character to atext (the caller decides whether that is allowed).
 */
export const DOT_ATOM = /^[\w!#$%&'*+\-/=?^`{|}~\u{80}-\u{10FFFF}]+(?:\.[\w!#$%&'*+\-/=?^`{|}~\u{80}-\u{10FFFF}]+)*$/u;

/** A quoted string: `"` and `\` escaped, everything else as is (the caller vets the characters). */
export function quoteString(text: string): string {
  return `"${text.replace(/["\\]/g, '\\$&')}"`;
}

function addrSpecOf(local: ASTNode, domain: ASTNode, mailbox: ASTNode | undefined): AddrSpec {
  return {
    local: localMeaning(local),
    domain: domain.semantic,
    routed: mailbox ? hasNode(mailbox, 'obs-route') : false,
  };
}

/**
 * The meaning of a local part (RFC 5322 §3.4.1): the parser's own `semantic` keeps the blanks
 * of the obsolete `a. b` form, which would turn `a.b@c` into the different `"a. b"@c`.
 */
function localMeaning(node: ASTNode): string {
  switch (node.name) {
    case 'cfws':
    case 'dquote':
      return '';
    case 'quoted-pair':
    case 'fws': // only reached inside a quoted string, where blanks are part of the text
      return node.semantic;
    default:
      return node.children.length ? node.children.map(localMeaning).join('') : node.semantic;
  }
}

function hasNode(node: ASTNode, name: string): boolean {
  return node.name === name || node.children.some((child) => hasNode(child, name));
}
