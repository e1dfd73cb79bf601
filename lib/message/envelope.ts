import { SMTPInvalidArgumentError } from '../errors';
import { formatAddrSpec, parseAddressList } from './address-list';
import type { HeaderField } from './header-block';

/** The SMTP envelope of a message: the reverse path and the forward paths. */
export interface HeaderEnvelope {
  /** The sender's addr-spec (`''` only when the caller asked for the null reverse path `<>`). */
  readonly from: string;
  /** The recipients' addr-specs, each once, in header order. */
  readonly to: string[];
}

/** Addresses given by the caller, which win over the headers (smtplib's `from_addr`/`to_addrs`). */
export interface EnvelopeOverride {
  /** The sender; `''` asks for the null reverse path `<>` (bounces, RFC 5321 §4.5.5). */
  readonly from?: string | undefined;
  readonly to?: readonly string[] | undefined;
}

/**
 * The envelope of a message from its own headers, as smtplib's `send_message` reads them.
 *
 * - Sender: `Sender` if present, else `From`; the first address of that field.
 * - Recipients: the addresses of every `To`, `Bcc` and `Cc` field (smtplib's order). smtplib reads
 *   only the first field of each name (`msg['To']`); a message with two `To` fields is malformed
 *   (RFC 5322 §3.6 allows one) but its second field was meant to be delivered too, so we read all.
 * - With exactly one `Resent-Date` field (one resent block, RFC 5322 §3.6.6), the `Resent-`
 *   fields are read instead; more than one block is refused, as smtplib does, because which
 *   block is the latest cannot be told for sure.
 * - Display names, comments and groups are not part of the envelope; group members are.
 *
 * The addresses are RFC 5322 addr-specs with their quoting kept (`"x@evil"@good`): pass each
 * through `mailboxForWire` before it goes on the wire.
 *
 * @param fields the message's header fields.
 * @param override addresses that win over the headers.
 * @return the envelope.
 * @throws SMTPInvalidArgumentError when there is no sender or no recipient, when a field read
 *   is not an address list or has a source-routed address (`<@a:b@c>`, refused rather than
 *   dropped, as `mailboxForWire` does), or when the message has more than one resent block.
 */
export function envelopeFromHeaders(fields: readonly HeaderField[], override: EnvelopeOverride = {}): HeaderEnvelope {
  const prefix = resentPrefix(fields);
  const from = override.from ?? senderFromHeaders(fields, prefix);
  const to = unique(override.to ?? ['To', 'Bcc', 'Cc'].flatMap((name) => addressesOf(fields, prefix + name)));
  if (to.length === 0) {
    throw new SMTPInvalidArgumentError(
      override.to
        ? 'No recipients given'
        : `The message has no recipients: no address in its ${prefix}To, ${prefix}Cc or ${prefix}Bcc fields`,
    );
  }
  return { from, to };
}

/**
 * The header block without its `Bcc` and `Resent-Bcc` fields (every occurrence), for sending:
 * the blind copies must not learn of each other. The fields given are not modified.
 *
 * @param fields the message's header fields.
 * @return the bytes of the other fields, as written; the caller appends the block's separator.
 */
export function stripBcc(fields: readonly HeaderField[]): Uint8Array {
  const kept = fields.filter((field) => !/^(resent-)?bcc$/i.test(field.name));
  return Buffer.concat(kept.map((field) => field.raw));
}

function resentPrefix(fields: readonly HeaderField[]): '' | 'Resent-' {
  const blocks = fieldsNamed(fields, 'Resent-Date').length;
  if (blocks > 1) {
    throw new SMTPInvalidArgumentError(
      `message has more than one 'Resent-' header block (${blocks} Resent-Date fields); give the addresses explicitly`,
    );
  }
  return blocks === 1 ? 'Resent-' : '';
}

function senderFromHeaders(fields: readonly HeaderField[], prefix: string): string {
  const name = fieldsNamed(fields, prefix + 'Sender').length ? prefix + 'Sender' : prefix + 'From';
  // smtplib: getaddresses([msg['From']])[0][1]: the first address of the first field.
  const [first] = addressesOf(fields, name);
  if (!first) throw new SMTPInvalidArgumentError(`The message has no sender: no address in its ${name} field`);
  return first;
}

function addressesOf(fields: readonly HeaderField[], name: string): string[] {
  return fieldsNamed(fields, name).flatMap((field) =>
    parseAddressList(field.value, `${name} header`).map((spec) => {
      // As mailboxForWire does for an argument: dropping the route would send elsewhere than written.
      if (spec.routed) {
        throw new SMTPInvalidArgumentError(
          `The ${name} header has an address with a source route: ${JSON.stringify(field.value)}`,
        );
      }
      return formatAddrSpec(spec);
    }),
  );
}

function fieldsNamed(fields: readonly HeaderField[], name: string): HeaderField[] {
  const wanted = name.toLowerCase();
  return fields.filter((field) => field.name.toLowerCase() === wanted);
}

/** Each recipient once: a person in both To and Cc gets one copy, and one result. */
function unique(addresses: readonly string[]): string[] {
  return [...new Set(addresses)];
}
