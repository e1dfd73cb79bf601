import { lastValueFrom } from 'rxjs';
import { SMTPAuthenticationError, SMTPInvalidArgumentError } from '../../lib/errors';
import { scramSha1Mechanism, scramSha256Mechanism } from '../../lib/auth/scram';
import { auth$ } from '../../lib/session/authenticate';
import { FakeServer } from '../helpers/fake-server';
import { openSession } from '../helpers/session';
import { thrown } from '../helpers/thrown';

// The RFC 5802 §5 exchange (SCRAM-SHA-1, user "user", password "pencil").
const NONCE = 'fyko+d2lbbFgONRv9qkxdawL';
const SERVER_FIRST = `r=${NONCE}3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096`;
const CLIENT_FINAL = `c=biws,r=${NONCE}3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=`;
const SERVER_FINAL = 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=';

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
const b64 = (text: string): string => utf8(text).toString('base64');

/** A SCRAM-SHA-1 mechanism with the RFC's nonce that has sent its client-first-message. */
function started() {
  const scram = scramSha1Mechanism({ user: 'user', password: 'pencil' }, { nonce: NONCE });
  scram.initialResponse();
  return scram;
}

/** One that has also answered the RFC's server-first-message. */
function awaitingServerFinal() {
  const scram = started();
  scram.respond(utf8(SERVER_FIRST));
  return scram;
}

describe('SCRAM server-first-message syntax (RFC 5802 §7)', () => {
  it('refuses a salt whose base64 length is not a multiple of four', () => {
    const err = thrown(() => started().respond(utf8(SERVER_FIRST.replace('s=QSXCR+Q6sek8bf92', 's=QSXCR+Q6sek8bf9'))));
    expect(err).toMatchObject({
      code: 'ERR_SMTP_AUTHENTICATION',
      message: expect.stringMatching(/malformed server-first-message/),
    });
  });

  it('refuses an attribute whose name is more than one letter', () => {
    const err = thrown(() => started().respond(utf8(`${SERVER_FIRST},ext=1`)));
    expect(err.message).toMatch(/malformed server-first-message/);
  });

  it('refuses a nonce attribute with something before its name', () => {
    const err = thrown(() => started().respond(utf8(`x${SERVER_FIRST}`)));
    expect(err.message).toMatch(/malformed server-first-message/);
  });
});

describe('SCRAM server-final-message (RFC 5802 §7)', () => {
  it('reports an empty verifier as malformed, not as a wrong signature', () => {
    const err = thrown(() => awaitingServerFinal().respond(utf8('v=')));
    expect(err.message).toMatch(/malformed server-final-message/);
  });

  it('reports a message that only contains "v=" past its start as malformed, and does not verify it', () => {
    const scram = awaitingServerFinal();
    const err = thrown(() => scram.respond(utf8(`x${SERVER_FINAL}`)));
    expect(err.message).toMatch(/malformed server-final-message/);
    expect(() => scram.finish()).toThrow(/without proving it knows the password/);
  });

  it('reports a message that only contains "e=" past its start as malformed, not as the server\'s error', () => {
    const err = thrown(() => awaitingServerFinal().respond(utf8('xe=invalid-proof')));
    expect(err.message).toMatch(/malformed server-final-message/);
    expect(err.message).not.toMatch(/refused/);
  });
});

describe('SCRAM SASLprep of the credentials (RFC 5802 §5.1, RFC 4013)', () => {
  // U+0221 was unassigned in Unicode 3.2, the version SASLprep is defined on.
  const unassigned = '\u0221';

  it('allows an unassigned code point in the user name (a query string)', () => {
    const scram = scramSha256Mechanism({ user: `user${unassigned}`, password: 'pencil' }, { nonce: NONCE });
    expect(scram.initialResponse()).toBe(`n,,n=user${unassigned},r=${NONCE}`);
  });

  it('refuses an unassigned code point in the password (a stored string), naming the password', () => {
    const err = thrown(() => scramSha256Mechanism({ user: 'user', password: `pencil${unassigned}` }, { nonce: NONCE }));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toMatch(/the password is not valid under SASLprep/);
    expect(err.message).not.toContain(unassigned);
  });

  it("refuses a prohibited user name, naming the user name and keeping SASLprep's error as the cause", () => {
    const err = thrown(() => scramSha256Mechanism({ user: 'us\u0007er', password: 'pencil' }, { nonce: NONCE }));
    expect(err).toBeInstanceOf(SMTPInvalidArgumentError);
    expect(err.message).toMatch(/the user name is not valid under SASLprep/);
    expect(err.cause).toBeInstanceOf(Error);
  });
});

describe('SCRAM over the wire: the server must prove it knows the password', () => {
  let fake: FakeServer | undefined;
  let close: (() => void) | undefined;
  afterEach(async () => {
    close?.();
    await fake?.close();
    fake = close = undefined;
  });

  async function authenticate(answerToClientFinal: string) {
    fake = await FakeServer.start({
      extensions: ['AUTH SCRAM-SHA-1'],
      handlers: { AUTH: `334 ${b64(SERVER_FIRST)}`, '*': answerToClientFinal },
    });
    const opened = await openSession(fake.port, { timeout: 2000 });
    close = opened.close;
    const sasl = scramSha1Mechanism({ user: 'user', password: 'pencil' }, { nonce: NONCE });
    return lastValueFrom(auth$(opened.session, sasl, { allowPlaintextAuth: true }));
  }

  it('refuses a bare 235 to the client-final-message (no server signature was sent)', async () => {
    const err = await authenticate('235 2.7.0 Authentication successful').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPAuthenticationError);
    expect((err as Error).message).toMatch(/no verified server signature/);
    // The client answered the server-first-message with its proof, then got the 235 instead of a 334 v=.
    expect(fake!.session.commands.slice(-2)).toEqual([
      `AUTH SCRAM-SHA-1 ${b64(`n,,n=user,r=${NONCE}`)}`,
      b64(CLIENT_FINAL),
    ]);
  });
});
