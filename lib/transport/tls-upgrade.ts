import * as net from 'node:net';
import * as tls from 'node:tls';
import { SMTPCertificateError, SMTPProtocolError, SMTPServerDisconnected } from '../errors';

/** Who the server must prove to be: the host connected to, and the SNI name (host names only). */
export interface TlsIdentity {
  /** The host connected to, name or IP literal: the certificate is checked against it. */
  readonly host?: string | undefined;
  /** The SNI name; never an IP literal (RFC 6066 §3). */
  readonly servername?: string | undefined;
}

/**
 * Wraps a connected plaintext socket in TLS after a 220 to STARTTLS (RFC 3207 §4.2), verifying
 * the certificate against the same identity implicit TLS would: the host connected to. Without
 * `host`, Node would check the name "localhost", so that a certificate for localhost would pass
 * for any IP address and a correct IP-SAN certificate would fail.
 *
 * @param raw the plaintext socket, already detached from its reader.
 * @param options Node TLS options (`ca`, `rejectUnauthorized`, …); their `host`/`servername` win.
 * @param identity the host connected to and its SNI name.
 * @return the TLS socket; it emits `secureConnect`, or `error` then `close`.
 */
export function startTls(raw: net.Socket, options: tls.ConnectionOptions, identity: TlsIdentity): tls.TLSSocket {
  const servername = options.servername ?? identity.servername;
  return tls.connect({
    ...(identity.host !== undefined ? { host: identity.host } : {}),
    ...options,
    socket: raw,
    ...(servername ? { servername } : {}),
  });
}

/** RFC 3207 §4.2 / CVE-2011-0411: bytes that came with or after the STARTTLS 220 were injected. */
export function injectionError(): SMTPProtocolError {
  return new SMTPProtocolError('Data received after the STARTTLS 220 reply (possible injection); aborting');
}

/**
 * Node's verification failures (OpenSSL's X509 codes and Node's own host-name check): the
 * certificate, not the network, is the problem.
 */
const CERTIFICATE_CODES = new RegExp(
  `^(${[
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'HOSTNAME_MISMATCH',
    'CERT_.*',
    '.*_CERT(_.*)?',
    'UNABLE_TO_.*',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'INVALID_CA',
    'INVALID_PURPOSE',
    'PATH_LENGTH_EXCEEDED',
  ].join('|')})$`,
);

/**
 * What a socket error means: a certificate that failed verification is `SMTPCertificateError`
 * (permanent), anything else a lost connection (`SMTPServerDisconnected`, worth retrying).
 *
 * @param err the socket's error.
 * @param context what was going on, for the message ("Connection error", "Could not connect to …").
 */
export function socketFailure(
  err: Error & { code?: string },
  context: string,
): SMTPCertificateError | SMTPServerDisconnected {
  if (typeof err.code === 'string' && CERTIFICATE_CODES.test(err.code)) {
    return new SMTPCertificateError(`${context}: the server's certificate failed verification: ${err.message}`, {
      cause: err,
    });
  }
  return new SMTPServerDisconnected(`${context}: ${err.message}`, { cause: err });
}
