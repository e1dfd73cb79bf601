import { lastValueFrom, of, toArray } from 'rxjs';
import { scramSha1Mechanism, scramSha256Mechanism } from '../../lib/auth/scram';
import type { TextMechanism } from '../../lib/auth/mechanism';
import {
  SMTPAuthenticationError,
  SMTPCertificateError,
  SMTPInvalidArgumentError,
  SMTPNotSupportedError,
  SMTPPossiblyDeliveredError,
  SMTPProtocolError,
  SMTPRecipientsRefused,
  SMTPReplyLimitError,
  SMTPResponseException,
  SMTPServerDisconnected,
  SMTPSizeExceededError,
  SMTPTimeoutError,
} from '../../lib/errors';
import { envelopeFromHeaders, stripBcc } from '../../lib/message/envelope';
import { parseHeaderBlock } from '../../lib/message/header-block';
import { classifyFailure } from '../../lib/pool/outcome';
import { isIpLiteral, resolveEndpoint } from '../../lib/transport/options';
import { socketFailure } from '../../lib/transport/tls-upgrade';
import { parseServerUrl, redact } from '../../lib/transport/url';
import { BodyEncoder } from '../../lib/wire/body-encoder';
import { has8bit } from '../../lib/wire/body-source';
import { authMechanisms, parseCapabilities } from '../../lib/wire/capabilities';
import { coalesce } from '../../lib/wire/coalesce';
import { command } from '../../lib/wire/command';
import { ReplyParser, parseReplies } from '../../lib/wire/reply';
import { thrown } from '../helpers/thrown';

/*
 * The regular expressions and the user-visible texts of lib/wire, lib/transport, lib/auth/scram.ts and
 * lib/message/envelope.ts, and the error codes lib/pool/outcome.ts classifies by, case by case (mutation
 * sweep): each table has a row on either side of every anchor, character class and quantifier, so a regex
 * that loses one of them gets a row wrong.
 */

describe('regexes of lib/transport/url.ts', () => {
  it.each([
    // The scheme is kept, letters, digits, "+", "." and "-" included, in either case.
    ['smtp://user:pw@mx.example', 'smtp://***@mx.example'],
    ['smtp+x.1://user:pw@mx.example', 'smtp+x.1://***@mx.example'],
    ['LMTP-2://user:pw@mx.example', 'LMTP-2://***@mx.example'],
    // No scheme: everything before the last "@" goes.
    ['user:pw@mx.example', '***@mx.example'],
    // A "scheme" starting with a digit is no scheme: it goes with the secret.
    ['1smtp://user:pw@mx.example', '***@mx.example'],
    // A secret holding "@" and "/": up to the last "@".
    ['smtps://me@x.test:p/w@d@mx.example', 'smtps://***@mx.example'],
    // One character before the "@" is still a secret.
    ['smtp://u@mx.example', 'smtp://***@mx.example'],
    // Nothing to hide.
    ['smtp://mx.example:25', 'smtp://mx.example:25'],
    // The match starts at the beginning: a line break before the "@" stops it there, and nothing is rewritten.
    ['smtp://a\nb:pw@mx.example', 'smtp://a\nb:pw@mx.example'],
  ])('redact(%j) is %j', (url, shown) => {
    expect(redact(url)).toBe(shown);
  });

  it('shows the redacted URL, scheme kept, in the error of a URL it refuses', () => {
    const err = thrown(() => parseServerUrl('smtp+x.1://user:hunter2@mx.example'));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe('Invalid server URL "smtp+x.1://***@mx.example": unknown scheme "smtp+x.1"');
  });

  it.each([
    ['smtp://[::1]:2525', { host: '::1', port: 2525 }],
    ['smtp://[2001:db8::25]', { host: '2001:db8::25', port: 25 }],
    ['smtp://127.0.0.1', { host: '127.0.0.1', port: 25 }],
  ])('takes the brackets off an IPv6 literal only: %s', (url, expected) => {
    expect(parseServerUrl(url)).toEqual(expected);
  });
});

describe('regexes of lib/wire/command.ts', () => {
  it.each(['MAIL', 'X', 'x-foo', 'XCLIENT', 'X-Y2K', 'b2-'])('accepts the verb %j', (verb) => {
    expect(command(verb).line).toBe(verb);
  });

  it.each(['9X', '-MAIL', 'MAIL:', 'MAIL FROM', 'X_Y', 'ÉHLO', ''])('refuses the verb %j, naming it', (verb) => {
    const err = thrown(() => command(verb));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe(`Not a command verb: ${JSON.stringify(verb)}`);
  });

  it('takes arguments of printable text, TAB included', () => {
    expect(command('MAIL', ['FROM:<a@x.test>', 'SIZE=10\tX']).line).toBe('MAIL FROM:<a@x.test> SIZE=10\tX');
  });

  it.each([
    ['\x00', '00'],
    ['\x08', '08'],
    ['\n', '0a'],
    ['\x1f', '1f'],
    ['\x7f', '7f'],
  ])('refuses a control character in an argument (%j), naming the argument, the byte and where', (bad, hex) => {
    const err = thrown(() => command('RCPT', ['TO:<a@x.test>', `X=1${bad}`]));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe(
      `The argument 2 of RCPT contains a control character (0x${hex}) at offset 3; refusing to send it`,
    );
  });

  it('refuses a control character in the verb itself, as the command verb', () => {
    expect(thrown(() => command('NO\rOP')).message).toBe(
      'The command verb contains a control character (0x0d) at offset 2; refusing to send it',
    );
  });
});

describe('regexes of lib/transport/options.ts', () => {
  it.each([
    ['mx.example:2525', { host: 'mx.example', port: 2525 }],
    ['mx.example:7', { host: 'mx.example', port: 7 }],
    ['mx.example', { host: 'mx.example', port: 25 }],
  ])('splits "host:port" %j when the tail is all digits', (host, endpoint) => {
    expect(resolveEndpoint({ host }, { port: 25 })).toEqual(endpoint);
  });

  it.each(['x25', '25x', '2 5', '', 'smtp'])('refuses the port %j of "host:port", naming it', (tail) => {
    const err = thrown(() => resolveEndpoint({ host: `mx.example:${tail}` }, { port: 25 }));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe(`nonnumeric port: ${JSON.stringify(tail)}`);
  });

  it.each([
    ['10.0.0.1', true],
    ['1', true],
    ['::1', true],
    ['mx.example', false],
    ['mx.example.10', false],
    ['10.example', false],
    ['example', false],
  ])('isIpLiteral(%j) is %j (no SNI for an address)', (host, literal) => {
    expect(isIpLiteral(host)).toBe(literal);
  });
});

describe('the enhanced status code regex of lib/wire/reply.ts', () => {
  const replyTo = async (line: string) => {
    const replies = await lastValueFrom(of(Buffer.from(`${line}\r\n`)).pipe(parseReplies(), toArray()));
    return replies[0];
  };

  it.each([
    ['250 2.1.0 Sender ok', '2.1.0'],
    ['250 2.1.0', '2.1.0'],
    ['250 2.1.0\tok', '2.1.0'],
    ['550 5.10.100 No', '5.10.100'],
    ['452 4.123.5 Later', '4.123.5'],
    ['250 2.0.10 ok', '2.0.10'],
  ])('reads the enhanced status of %j', async (line, status) => {
    expect((await replyTo(line))?.enhancedStatus).toBe(status);
  });

  it.each([
    '250 x.2.1.0 Not one',
    '250 2.1.0x ok',
    '250 2.1234.0 ok',
    '250 2.1.1234 ok',
    '250 2.a.0 ok',
    '250 2.1.b ok',
    '250 3.1.0 ok',
    '250 2.1 ok',
  ])('finds no enhanced status in %j', async (line) => {
    const reply = await replyTo(line);
    expect(reply?.code).toBe(250);
    expect(reply?.enhancedStatus).toBeUndefined();
  });
});

describe('regexes of lib/wire/capabilities.ts', () => {
  const ehlo = (...lines: string[]) => parseCapabilities(['mx.example greets you', ...lines].join('\n'));

  it('reads each keyword, lower-cased, with its parameters or none', () => {
    expect(ehlo('SIZE 1000', 'PIPELINING', '8BITMIME', 'X-EXPS2 a b', 'AUTH LOGIN PLAIN')).toEqual({
      size: '1000',
      pipelining: '',
      '8bitmime': '',
      'x-exps2': 'a b',
      auth: ' LOGIN PLAIN',
    });
  });

  it('skips a line that does not start with a keyword', () => {
    expect(ehlo(' SIZE 1000', '-FOO', '_X', 'OK')).toEqual({ ok: '' });
  });

  it('folds only a line starting with the old-style AUTH= into auth, all of its value', () => {
    expect(ehlo('AUTH=LOGIN PLAIN', 'XAUTH=CRAM')).toEqual({ auth: ' LOGIN PLAIN', xauth: '=CRAM' });
  });

  it('lists the AUTH mechanisms, upper-cased, whatever the blanks between them', () => {
    expect(authMechanisms({ auth: ' login  PLAIN\tcram-md5 ' })).toEqual(['LOGIN', 'PLAIN', 'CRAM-MD5']);
  });
});

describe('the 8-bit regex of lib/wire/body-source.ts', () => {
  it.each([
    ['Subject: hi\r\n\r\nplain ASCII, DEL \x7f and NUL \x00\r\n', false],
    ['', false],
    ['caf\u00e9', true],
    ['\u0080', true],
    ['\u{1f600}', true],
  ])('has8bit(%j) is %j', (body, eight) => {
    expect(has8bit(body)).toBe(eight);
  });
});

describe('the Bcc regex of lib/message/envelope.ts', () => {
  const block = (...lines: string[]) =>
    parseHeaderBlock(new Uint8Array(Buffer.from(lines.map((l) => `${l}\r\n`).join(''))), new Uint8Array(0)).fields;

  it('strips Bcc and Resent-Bcc in any case, and only those', () => {
    const fields = block(
      'From: a@example.com',
      'Bcc: b@example.com',
      'X-Bcc: kept1@example.com',
      'bcc: c@example.com',
      'Bcc-Count: 2',
      'RESENT-BCC: d@example.com',
      'Resent-Resent-Bcc: kept2@example.com',
      'ResentBcc: kept3@example.com',
    );
    expect(Buffer.from(stripBcc(fields)).toString('utf8')).toBe(
      'From: a@example.com\r\nX-Bcc: kept1@example.com\r\nBcc-Count: 2\r\n' +
        'Resent-Resent-Bcc: kept2@example.com\r\nResentBcc: kept3@example.com\r\n',
    );
  });
});

// RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256).
const SHA1 = {
  factory: scramSha1Mechanism,
  name: 'SCRAM-SHA-1',
  clientNonce: 'fyko+d2lbbFgONRv9qkxdawL',
  serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
  serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
};
const SHA256 = {
  factory: scramSha256Mechanism,
  name: 'SCRAM-SHA-256',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

describe.each([SHA1, SHA256])('regexes of lib/auth/scram.ts, $name', (rfc) => {
  const ascii = (text: string) => Buffer.from(text, 'utf8');
  const start = (nonce = rfc.clientNonce): TextMechanism =>
    rfc.factory({ user: 'user', password: 'pencil' }, { nonce });
  const afterServerFirst = (): TextMechanism => {
    const scram = start();
    scram.initialResponse();
    scram.respond(ascii(rfc.serverFirst));
    return scram;
  };
  /** The error the server-first-message `serverFirst` gets. */
  const refusalOf = (serverFirst: string) => {
    const scram = start();
    scram.initialResponse();
    return thrown(() => scram.respond(ascii(serverFirst)));
  };

  it('verifies the RFC exchange', () => {
    const scram = afterServerFirst();
    expect(scram.respond(ascii(rfc.serverFinal))).toBe('');
    expect(() => scram.finish()).not.toThrow();
  });

  it('verifies a server-final-message that has extensions after the verifier', () => {
    const scram = afterServerFirst();
    expect(scram.respond(ascii(`${rfc.serverFinal},e=not-an-error,x=1`))).toBe('');
    expect(() => scram.finish()).not.toThrow();
  });

  it('takes a server error only at the start of the server-final-message, quoting all of it', () => {
    const err = thrown(() => afterServerFirst().respond(ascii('e=invalid-proof,x=1')));
    expect(err).toBeInstanceOf(SMTPAuthenticationError);
    expect(err.message).toContain('the server refused the authentication: invalid-proof');
    expect(err.message).not.toContain('invalid-proof,');
  });

  it.each([
    (final: string) => `x=1,${final}`,
    (final: string) => `${final}!`,
    (final: string) => final.replace('v=', 'v=!'),
    () => 'v=',
    () => 'v=A',
  ])('calls a verifier that is not at the start or not base64 malformed (%#)', (mangle) => {
    const final = mangle(rfc.serverFinal);
    const err = thrown(() => afterServerFirst().respond(ascii(final)));
    expect(err).toBeInstanceOf(SMTPAuthenticationError);
    expect(err.message).toContain(`malformed server-final-message: ${final}`);
  });

  it.each(['abc,', ',abc', 'a,b', 'ab c', ''])('refuses the client nonce %j', (nonce) => {
    const err = thrown(() => start(nonce));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe(`${rfc.name}: the nonce must be printable ASCII without ','`);
  });

  it.each([
    ['a salt that is not base64', (first: string) => first.replace(/,s=[^,]*/, ',s=!!!!')],
    ['an empty salt', (first: string) => first.replace(/,s=[^,]*/, ',s=')],
    ['a salt whose length is not a multiple of 4', (first: string) => first.replace(/,s=[^,]*/, ',s=QSXCR')],
    ['a salt with a non-base64 tail', (first: string) => first.replace(/,s=[^,]*/, ',s=QSXC!')],
    ['a salt with a non-base64 head', (first: string) => first.replace(/,s=[^,]*/, ',s=!QSXCR+Q')],
    ['an iteration count of 0', (first: string) => first.replace(/,i=\d+/, ',i=0')],
    ['an iteration count with a leading 0', (first: string) => first.replace(/,i=\d+/, ',i=04096')],
    ['an iteration count with a trailing letter', (first: string) => first.replace(/,i=\d+/, ',i=4096x')],
    ['an iteration count with a leading letter', (first: string) => first.replace(/,i=\d+/, ',i=x4096')],
    ['an extension whose name is two letters', (first: string) => `${first},xy=1`],
    ['an extension whose name is a digit', (first: string) => `${first},1=1`],
    ['a nonce with a space at its end', (first: string) => first.replace(/,s=/, ' ,s=')],
  ])('calls a server-first-message with %s malformed', (_, mangle) => {
    const first = mangle(rfc.serverFirst);
    const err = refusalOf(first);
    expect(err).toBeInstanceOf(SMTPAuthenticationError);
    expect(err.message).toContain(`malformed server-first-message: ${first}`);
  });
});

describe('TLS failures as users read them (lib/transport/tls-upgrade.ts)', () => {
  const failure = (code: string | undefined, message = 'boom') =>
    socketFailure(
      Object.assign(new Error(message), code === undefined ? {} : { code }),
      'Could not connect to mx.example:465',
    );

  it.each([
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'HOSTNAME_MISMATCH',
    'CERT_HAS_EXPIRED',
    'CERT_NOT_YET_VALID',
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'ERR_SELF_SIGNED_CERT',
    'INVALID_CA',
    'INVALID_PURPOSE',
    'PATH_LENGTH_EXCEEDED',
  ])('calls %s a certificate that failed verification', (code) => {
    const err = failure(code, 'self-signed certificate');
    expect(err).toBeInstanceOf(SMTPCertificateError);
    expect(err.message).toBe(
      "Could not connect to mx.example:465: the server's certificate failed verification: self-signed certificate",
    );
  });

  it.each([
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'X_INVALID_CA',
    'INVALID_CA_X',
    'XHOSTNAME_MISMATCH',
    'HOSTNAME_MISMATCHX',
    'ERR_SSL_WRONG_VERSION_NUMBER',
    '',
    undefined,
  ])('calls %j a lost connection, quoting the socket error', (code) => {
    const err = failure(code, 'read ECONNRESET');
    expect(err).toBeInstanceOf(SMTPServerDisconnected);
    expect(err).not.toBeInstanceOf(SMTPCertificateError);
    expect(err.message).toBe('Could not connect to mx.example:465: read ECONNRESET');
  });
});

describe('texts of errors users read', () => {
  it.each([
    ['smtp://mx.example/?x=1', 'no query or fragment is allowed'],
    ['smtp://mx.example#top', 'no query or fragment is allowed'],
    ['lmtp+unix://mx.example/run/lmtp', 'a Unix socket URL has no host: lmtp+unix:///path/to/socket'],
    ['lmtp+unix:///', 'the socket path is missing'],
    ['smtp://[::1', 'not a URL (smtp://host[:port], smtps://, smtp+starttls://, lmtp://, lmtp+unix:///path)'],
    ['smtp://mx.example:0', 'port 0'],
  ])('parseServerUrl(%j) says why it refuses it', (url, reason) => {
    const err = thrown(() => parseServerUrl(url));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe(`Invalid server URL ${JSON.stringify(url)}: ${reason}`);
  });

  it('says what a body chunk that is not bytes was', () => {
    const err = thrown(() => new BodyEncoder().push('text' as unknown as Uint8Array));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe('A body chunk must be a Uint8Array, got string');
  });

  it.each([0, 1.5])('says what maxBytes %j of coalesce was', (maxBytes) => {
    const err = thrown(() => coalesce(maxBytes));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toBe(`maxBytes must be a positive integer, got ${maxBytes}`);
  });

  it('names both codes of a multi-line reply that changes code', () => {
    const err = thrown(() => new ReplyParser().push(Buffer.from('250-mx.example\r\n251 ok\r\n')));
    expect(err).toMatchObject({ code: 'ERR_SMTP_PROTOCOL' });
    expect(err.message).toBe('Reply code changed inside a multi-line reply: 250 then 251');
  });
});

describe('texts of envelope errors (lib/message/envelope.ts)', () => {
  const block = (...lines: string[]) =>
    parseHeaderBlock(new Uint8Array(Buffer.from(lines.map((l) => `${l}\r\n`).join(''))), new Uint8Array(0)).fields;
  const refusal = (...lines: string[]) => {
    const err = thrown(() => envelopeFromHeaders(block(...lines)));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    return err.message;
  };

  it('names the fields it found no recipient in, Resent- ones for a resent message', () => {
    expect(refusal('From: a@example.com', 'Subject: x')).toBe(
      'The message has no recipients: no address in its To, Cc or Bcc fields',
    );
    expect(
      refusal('Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000', 'Resent-From: a@example.com', 'To: b@example.com'),
    ).toBe('The message has no recipients: no address in its Resent-To, Resent-Cc or Resent-Bcc fields');
  });

  it('names the field it found no sender in', () => {
    expect(refusal('To: b@example.com')).toBe('The message has no sender: no address in its From field');
    expect(refusal('Sender: undisclosed-recipients:;', 'From: a@example.com', 'To: b@example.com')).toBe(
      'The message has no sender: no address in its Sender field',
    );
  });

  it('counts the Resent- blocks it will not choose between', () => {
    expect(
      refusal(
        'Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000',
        'Resent-Date: Tue, 2 Jan 2024 00:00:00 +0000',
        'From: a@example.com',
        'To: b@example.com',
      ),
    ).toBe("message has more than one 'Resent-' header block (2 Resent-Date fields); give the addresses explicitly");
  });

  it('quotes the field with a source-routed address', () => {
    expect(refusal('From: a@example.com', 'To: <@relay.example:b@example.com>')).toBe(
      'The To header has an address with a source route: "<@relay.example:b@example.com>"',
    );
  });
});

describe.each([SHA1, SHA256])('texts of SCRAM errors, $name', (rfc) => {
  const ascii = (text: string) => Buffer.from(text, 'utf8');
  const start = (options: { minIterations?: number } = {}, user = 'user'): TextMechanism =>
    rfc.factory({ user, password: 'pencil' }, { nonce: rfc.clientNonce, ...options });
  const afterServerFirst = (): TextMechanism => {
    const scram = start();
    scram.initialResponse();
    scram.respond(ascii(rfc.serverFirst));
    return scram;
  };
  /** An SMTPAuthenticationError, with its message. */
  const failureOf = (fn: () => unknown) => {
    const err = thrown(fn);
    expect(err).toBeInstanceOf(SMTPAuthenticationError);
    return err.message;
  };

  it('refuses a user name SASLprep refuses, saying so', () => {
    const err = thrown(() => start({}, 'us\u0007er'));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toMatch(new RegExp(`^${rfc.name}: the user name is not valid under SASLprep: .+`));
  });

  it('refuses a password SASLprep refuses, saying so', () => {
    const err = thrown(() => rfc.factory({ user: 'user', password: 'pen\u0007cil' }));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toMatch(new RegExp(`^${rfc.name}: the password is not valid under SASLprep: .+`));
  });

  it('makes up a fresh base64 nonce of 24 random bytes when given none', () => {
    const [a, b] = [1, 2].map(() => rfc.factory({ user: 'user', password: 'pencil' }).initialResponse());
    expect(a).toMatch(/^n,,n=user,r=[A-Za-z0-9+/]{32}$/);
    expect(b).toMatch(/^n,,n=user,r=[A-Za-z0-9+/]{32}$/);
    expect(a).not.toBe(b);
  });

  it('names each way the server leaves the exchange', () => {
    expect(failureOf(() => start().respond(ascii(rfc.serverFirst)))).toContain(
      `${rfc.name}: the server sent a challenge before the client-first-message`,
    );
    const verified = afterServerFirst();
    verified.respond(ascii(rfc.serverFinal));
    expect(failureOf(() => verified.respond(ascii('v=x')))).toContain(
      `${rfc.name}: the server sent a challenge after its final message`,
    );
    expect(failureOf(() => afterServerFirst().finish())).toContain(
      `${rfc.name}: the server accepted without proving it knows the password (no verified server signature)`,
    );
    expect(failureOf(() => afterServerFirst().respond(ascii(rfc.serverFinal.replace('v=', 'v=AAAA'))))).toContain(
      `${rfc.name}: the server signature is wrong: the server does not know the password`,
    );
  });

  it('names what is wrong with the server-first-message', () => {
    const first = () => {
      const scram = start({ minIterations: 5000 });
      scram.initialResponse();
      return scram;
    };
    expect(failureOf(() => first().respond(Buffer.from([0xff, 0xfe])))).toContain(
      `${rfc.name}: the server message is not UTF-8`,
    );
    expect(failureOf(() => first().respond(ascii(`m=ext,${rfc.serverFirst}`)))).toContain(
      `${rfc.name}: the server requires an extension this client does not support (m=)`,
    );
    expect(failureOf(() => first().respond(ascii(rfc.serverFirst)))).toContain(
      `${rfc.name}: the server asks for 4096 iterations, fewer than the minimum of 5000`,
    );
  });
});

describe('the error codes lib/pool/outcome.ts classifies a failure by', () => {
  const reply = (code: number) => ({ code, message: `${code} x`, lines: [`${code} x`] });

  it.each([
    [
      'possibly delivered',
      new SMTPPossiblyDeliveredError('lost after the dot', { cause: new Error('reset') }),
      { status: 'possibly-delivered', transient: false },
    ],
    ['a 451', new SMTPResponseException(451, 'later'), { status: 'failed', transient: true }],
    ['a 550', new SMTPResponseException(550, 'no'), { status: 'refused', transient: false }],
    [
      'recipients all refused with 4yz',
      new SMTPRecipientsRefused({ 'a@x.test': reply(450), 'b@x.test': reply(451) }),
      { status: 'failed', transient: true },
    ],
    [
      'recipients refused with a 5yz among them',
      new SMTPRecipientsRefused({ 'a@x.test': reply(450), 'b@x.test': reply(550) }),
      { status: 'refused', transient: false },
    ],
    ['recipients refused without replies', new SMTPRecipientsRefused({}), { status: 'refused', transient: false }],
    ['an invalid argument', new SMTPInvalidArgumentError('bad'), { status: 'refused', transient: false }],
    ['an unsupported feature', new SMTPNotSupportedError('no SMTPUTF8'), { status: 'refused', transient: false }],
    ['a message over SIZE', new SMTPSizeExceededError(2000, 1000), { status: 'refused', transient: false }],
    ['a lost connection', new SMTPServerDisconnected('gone'), { status: 'failed', transient: true }],
    ['a timeout', new SMTPTimeoutError('mail', 5), { status: 'failed', transient: true }],
    ['a protocol violation', new SMTPProtocolError('odd reply'), { status: 'failed', transient: true }],
    ['a reply over the limits', new SMTPReplyLimitError('too long'), { status: 'failed', transient: true }],
    ['an error of some other kind', new Error('bug'), { status: 'failed', transient: false }],
    [
      'an error whose smtpCode is not a number',
      Object.assign(new Error('odd'), { smtpCode: '451' }),
      { status: 'failed', transient: false },
    ],
  ])('classifies %s', (_, err, verdict) => {
    expect(classifyFailure(err)).toEqual(verdict);
  });
});
