import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'crypto';
import { SMTPInvalidArgumentError } from '../errors';
import { escapeSaslName, gs2Header } from './gs2';
import { authFailure, printable, type TextMechanism } from './mechanism';

/** Options of the SCRAM mechanisms. */
export interface ScramOptions {
  /** The client nonce; by default 24 random bytes in base64. Give one only in tests. */
  nonce?: string;
  /**
   * The highest iteration count accepted from the server; default 100 000.
   * The key derivation runs synchronously, so the server's count decides how
   * long the event loop is blocked: 100 000 is about 50 ms of PBKDF2, 24 times
   * the 4096 of Dovecot, Cyrus and GNU SASL, and above MongoDB's 15 000.
   */
  maxIterations?: number;
  /**
   * The lowest iteration count accepted; default 1 (no policy). RFC 7677 §4 asks
   * servers for at least 4096: pass 4096 to insist, so that a server cannot make
   * the exchange cheap to attack offline.
   */
  minIterations?: number;
}

const HASHES = {
  'SHA-1': { algorithm: 'sha1', bytes: 20 },
  'SHA-256': { algorithm: 'sha256', bytes: 32 },
} as const;

type ScramHash = keyof typeof HASHES;

const DEFAULT_MAX_ITERATIONS = 100_000;

// RFC 5802 §7: printable = %x21-2B / %x2D-7E (no comma).
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const POSITIVE_NUMBER = /^[1-9][0-9]*$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * SCRAM-SHA-1 (RFC 5802).
 *
 * @param credentials the user name and password, both SASLprep'd.
 * @param options nonce (tests), iteration bounds.
 * @return a mechanism for one attempt.
 * @throws SMTPInvalidArgumentError when the user name or password fails SASLprep.
 */
export function scramSha1Mechanism(
  credentials: { user: string; password: string },
  options?: ScramOptions,
): TextMechanism {
  return scramMechanism('SHA-1', credentials, options);
}

/**
 * SCRAM-SHA-256 (RFC 7677).
 *
 * @param credentials the user name and password, both SASLprep'd.
 * @param options nonce (tests), iteration bounds.
 * @return a mechanism for one attempt.
 * @throws SMTPInvalidArgumentError when the user name or password fails SASLprep.
 */
export function scramSha256Mechanism(
  credentials: { user: string; password: string },
  options?: ScramOptions,
): TextMechanism {
  return scramMechanism('SHA-256', credentials, options);
}

/**
 * SCRAM (RFC 5802) without channel binding (GS2 header `n,,`). The exchange:
 * client-first (initial response, or the answer to the first empty 334),
 * server-first → client-final with the proof, server-final → verify the
 * server's signature and answer empty; `finish()` on 235 throws unless that
 * signature was verified, so a server that skips it is not trusted.
 */
function scramMechanism(
  hash: ScramHash,
  { user, password }: { user: string; password: string },
  { nonce = randomBytes(24).toString('base64'), maxIterations, minIterations = 1 }: ScramOptions = {},
): TextMechanism {
  const name = `SCRAM-${hash}`;
  const fail = (detail: string) => authFailure(334, name, detail);
  // RFC 5802 §5.1: the user name is a query string (unassigned code points
  // allowed), the password a stored string (not allowed).
  const userName = prepare(name, 'user name', user, true);
  const normalizedPassword = prepare(name, 'password', password, false);
  if (userName === '') throw new SMTPInvalidArgumentError(`${name}: the user name is empty`);
  if (!PRINTABLE.test(nonce))
    throw new SMTPInvalidArgumentError(`${name}: the nonce must be printable ASCII without ','`);
  const limits = { min: minIterations, max: maxIterations ?? DEFAULT_MAX_ITERATIONS };

  const clientFirstBare = `n=${escapeSaslName(userName)},r=${nonce}`;
  let step: 'start' | 'sentFirst' | 'sentFinal' | 'verified' = 'start';
  // The signature the server-final-message must carry, known once the proof is sent.
  let serverSignature = Buffer.alloc(0);

  const clientFirst = (): string => {
    step = 'sentFirst';
    return `${gs2Header()}${clientFirstBare}`;
  };

  const clientFinal = (serverFirst: string): string => {
    const { fullNonce, salt, iterations } = parseServerFirst(serverFirst, nonce, limits, fail);
    const { algorithm, bytes } = HASHES[hash];
    const hmac = (key: Buffer, text: string) => createHmac(algorithm, key).update(text).digest();
    const withoutProof = `c=${Buffer.from(gs2Header()).toString('base64')},r=${fullNonce}`;
    const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
    const saltedPassword = pbkdf2Sync(normalizedPassword, salt, iterations, bytes, algorithm);
    const clientKey = hmac(saltedPassword, 'Client Key');
    const storedKey = createHash(algorithm).update(clientKey).digest();
    const clientSignature = hmac(storedKey, authMessage);
    // readUInt8 throws past the end: both are HMACs of one algorithm, so never.
    const proof = Buffer.from(clientKey.map((byte, i) => byte ^ clientSignature.readUInt8(i)));
    serverSignature = hmac(hmac(saltedPassword, 'Server Key'), authMessage);
    step = 'sentFinal';
    return `${withoutProof},p=${proof.toString('base64')}`;
  };

  const verify = (serverFinal: string): string => {
    const error = /^e=([^,]*)/.exec(serverFinal)?.[1];
    if (error !== undefined) throw fail(`the server refused the authentication: ${printable(error)}`);
    const verifier = /^v=([^,]*)(?:,|$)/.exec(serverFinal)?.[1];
    if (verifier === undefined || verifier === '' || !BASE64.test(verifier)) {
      throw fail(`malformed server-final-message: ${printable(serverFinal)}`);
    }
    const received = Buffer.from(verifier, 'base64');
    if (received.length !== serverSignature.length || !timingSafeEqual(received, serverSignature)) {
      throw fail('the server signature is wrong: the server does not know the password');
    }
    step = 'verified';
    return '';
  };

  return {
    name,
    initialResponse: clientFirst,
    respond(challenge) {
      switch (step) {
        case 'start':
          // RFC 4954 §4: the empty 334 that asks for the initial response.
          if (challenge.length !== 0) throw fail('the server sent a challenge before the client-first-message');
          return clientFirst();
        case 'sentFirst':
          return clientFinal(decode(challenge, fail));
        case 'sentFinal':
          return verify(decode(challenge, fail));
        case 'verified':
          throw fail('the server sent a challenge after its final message');
      }
    },
    finish() {
      if (step !== 'verified') {
        throw authFailure(
          235,
          name,
          'the server accepted without proving it knows the password (no verified server signature)',
        );
      }
    },
  };
}

type Saslprep = typeof import('@mongodb-js/saslprep').saslprep;
let loadedSaslprep: Saslprep | undefined;

/** RFC 3454 table B.1, the code points SASLprep maps to nothing (RFC 4013 §2.2). */
const MAPPED_TO_NOTHING = new Set([
  0xad,
  0x34f,
  0x1806,
  0x180b,
  0x180c,
  0x180d,
  0x200b,
  0x200c,
  0x200d,
  0x2060,
  0xfeff,
  ...Array.from({ length: 16 }, (_, i) => 0xfe00 + i),
]);

/** Every code point of `value` is one SASLprep maps to nothing. */
function mapsToNothing(value: string): boolean {
  for (const c of value) if (!MAPPED_TO_NOTHING.has(c.codePointAt(0) ?? 0)) return false;
  return true;
}

/** SASLprep (RFC 4013), with the library's reason (which never quotes the input). */
function prepare(name: string, what: string, value: string, allowUnassigned: boolean): string {
  // Loaded on first use: its code point tables add about 5 MiB to every process that imports
  // rx-smtp, and only SCRAM needs them.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loadedSaslprep ??= (require('@mongodb-js/saslprep') as { saslprep: Saslprep }).saslprep;
  try {
    return loadedSaslprep(value, { allowUnassigned });
  } catch (err) {
    // @mongodb-js/saslprep throws a TypeError when everything maps to nothing (a lone U+00AD).
    if (err instanceof TypeError && mapsToNothing(value)) return '';
    throw new SMTPInvalidArgumentError(`${name}: the ${what} is not valid under SASLprep: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function decode(challenge: Buffer, fail: (detail: string) => Error): string {
  try {
    return UTF8.decode(challenge);
  } catch {
    throw fail('the server message is not UTF-8');
  }
}

/**
 * Parses server-first-message (RFC 5802 §7):
 * `[m=ext,]r=<nonce>,s=<base64 salt>,i=<count>[,ext…]`, strictly.
 */
function parseServerFirst(
  message: string,
  clientNonce: string,
  limits: { min: number; max: number },
  fail: (detail: string) => Error,
): { fullNonce: string; salt: Buffer; iterations: number } {
  const attributes = message.split(',');
  // RFC 5802 §5.1: a client that does not understand a mandatory extension must fail.
  if (attributes[0]?.startsWith('m=')) throw fail('the server requires an extension this client does not support (m=)');
  const malformed = () => fail(`malformed server-first-message: ${printable(message)}`);
  // attr-val = ALPHA "=" value (RFC 5802 §7).
  const [r, s, i, ...extensions] = attributes.map((attribute) =>
    /^[A-Za-z]=/.test(attribute) ? { key: attribute.charAt(0), value: attribute.slice(2) } : null,
  );
  if (r?.key !== 'r' || s?.key !== 's' || i?.key !== 'i' || extensions.some((e) => e === null)) throw malformed();
  const [fullNonce, salt, count] = [r.value, s.value, i.value];
  if (!PRINTABLE.test(fullNonce) || salt === '' || !BASE64.test(salt) || !POSITIVE_NUMBER.test(count))
    throw malformed();
  // The server's part must be there: without it the exchange could be replayed.
  if (!fullNonce.startsWith(clientNonce) || fullNonce.length === clientNonce.length) {
    throw fail('the server nonce does not extend the client nonce');
  }
  const iterations = Number(count);
  if (iterations > limits.max) {
    throw fail(`the server asks for ${printable(count, 20)} iterations, more than the limit of ${limits.max}`);
  }
  if (iterations < limits.min) {
    throw fail(`the server asks for ${printable(count, 20)} iterations, fewer than the minimum of ${limits.min}`);
  }
  return { fullNonce, salt: Buffer.from(salt, 'base64'), iterations };
}
