import { lastValueFrom } from 'rxjs';
import {
  SMTPInvalidArgumentError,
  SMTPNotSupportedError,
  SMTPProtocolError,
  SMTPResponseException,
  SMTPServerDisconnected,
  SMTPSizeExceededError,
  SMTPTimeoutError,
} from '../../lib/errors';
import { classifyFailure, leavesConnectionClean } from '../../lib/pool/outcome';
import { BODY, Bench } from './setup';

describe('classifyFailure at the edges of the 4yz class (RFC 5321 §4.2.1)', () => {
  it.each([
    [400, 'failed', true],
    [499, 'failed', true],
    [500, 'refused', false],
    [354, 'refused', false],
  ])('classifies a reply %i as %s (transient: %s)', (code, status, transient) => {
    expect(classifyFailure(new SMTPResponseException(code, 'x'))).toEqual({ status, transient });
  });
});

describe('leavesConnectionClean', () => {
  it('keeps a connection after a message refused before any byte was written', () => {
    for (const err of [
      new SMTPInvalidArgumentError('bad address'),
      new SMTPNotSupportedError('no SMTPUTF8'),
      new SMTPSizeExceededError(10, 5),
    ]) {
      expect(leavesConnectionClean(err)).toBe(true);
    }
  });

  it('gives up a connection whose state is unknown', () => {
    for (const err of [
      new SMTPServerDisconnected('gone'),
      new SMTPTimeoutError('data', 1000),
      new SMTPProtocolError('garbage'),
      new Error('bug'),
    ]) {
      expect(leavesConnectionClean(err)).toBe(false);
    }
  });
});

describe('SMTPPool and a malformed reply', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('retries the message on a fresh connection, as a protocol error of that connection', async () => {
    const fake = await bench.fake({
      // The first connection answers MAIL with a line that is not a reply; the next one behaves.
      handlers: {
        MAIL: (_line, session) => (fake.sessions.indexOf(session) === 0 ? { raw: 'hello there\r\n' } : '250 2.1.0 Ok'),
      },
    });
    const pool = bench.pool(fake.port, { retry: { attempts: 2, backoffMs: 1 } });
    const outcome = await lastValueFrom(pool.send$({ from: 'a@x.test', to: 'b@x.test', body: BODY }));
    expect(outcome).toMatchObject({ status: 'sent', attempts: 2 });
    expect(fake.sessions).toHaveLength(2);
    expect(fake.sessions[1]?.messages.map(String)).toEqual([BODY]);
  });
});
