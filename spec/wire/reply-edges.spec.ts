import { DEFAULT_REPLY_LIMITS, ReplyParser, isPositive } from '../../lib/wire/reply';
import { defined } from '../helpers/defined';

/** The codes of the replies `chunks` parse to, or the error code and smtpCode they raise. */
function verdict(chunks: readonly string[]): string {
  const parser = new ReplyParser();
  try {
    return chunks
      .flatMap((chunk) => parser.push(Buffer.from(chunk, 'latin1')))
      .map((r) => `${r.code}:${r.message.length}`)
      .join(',');
  } catch (err) {
    const { code, smtpCode } = err as { code?: string; smtpCode?: number };
    return `${code ?? ''} ${smtpCode ?? ''}`;
  }
}

describe('ReplyParser at the line length limit', () => {
  // Lines around the limit, each ending in CRLF; where a chunk ends must not change the verdict.
  const limit = DEFAULT_REPLY_LIMITS.maxLineLength;
  const lines = [-2, -1, 0, 1, 2].map((delta) => `250 ${'x'.repeat(limit + delta - 4)}`);

  it.each(lines.map((line) => [line.length, line]))(
    'gives a %i-byte line the same verdict whole and split around its CRLF',
    (_, line) => {
      const whole = verdict([`${line}\r\n`]);
      expect(verdict([line, '\r\n'])).toBe(whole);
      expect(verdict([`${line}\r`, '\n'])).toBe(whole);
      expect(verdict([line.slice(0, 100), `${line.slice(100)}\r`, '\n'])).toBe(whole);
      // After another line of the same chunk, too.
      expect(verdict([`250-a\r\n${line}\r\n`])).toBe(verdict(['250-a\r\n', `${line}\r\n`]));
    },
  );

  it('has lines on both sides of the limit among those (the table above is not vacuous)', () => {
    const verdicts = lines.map((line) => verdict([`${line}\r\n`]));
    expect(verdicts.some((v) => v.startsWith('250:'))).toBe(true);
    expect(verdicts.some((v) => v.startsWith('ERR_SMTP_REPLY_LIMIT'))).toBe(true);
  });
});

describe('ReplyParser, line by line', () => {
  const parse = (text: string) => new ReplyParser().push(Buffer.from(text, 'latin1'));

  it.each([
    ['250   spaced out \t\r\n', 'spaced out'],
    ['250 \ttabbed\r\n', 'tabbed'],
    ['250 kept\t \r\n', 'kept'],
    ['250  \t \r\n', ''],
    ['250 a  b\r\n', 'a  b'],
  ])('trims the blanks around the text of %j', (wire, message) => {
    expect(parse(wire)[0]?.message).toBe(message);
  });

  it.each([['2x0 text\r\n'], ['x50 text\r\n'], ['25x text\r\n'], ['2/0 text\r\n'], ['25: text\r\n']])(
    'refuses %j, whose code is not three digits',
    (wire) => {
      expect(() => parse(wire)).toThrow(expect.objectContaining({ code: 'ERR_SMTP_PROTOCOL' }));
    },
  );

  it('reads a code with a 9 in it', () => {
    expect(parse('599 5.9.9 odd\r\n')[0]).toMatchObject({ code: 599, enhancedStatus: '5.9.9' });
  });

  it('quotes at most 80 characters of a malformed line in its error', () => {
    const err = (() => {
      try {
        parse(`${'x'.repeat(200)}\r\n`);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toBe(`Malformed reply line: "${'x'.repeat(80)}"`);
  });
});

describe('ReplyParser enhanced status codes (RFC 3463 §2)', () => {
  const statusOf = (wire: string) =>
    defined(new ReplyParser().push(Buffer.from(wire, 'latin1'))[0], 'a reply').enhancedStatus;

  it.each([
    ['250 2.1.0 ok\r\n', '2.1.0'],
    ['250 2.10.100 ok\r\n', '2.10.100'],
    ['250 2.0.0\r\n', '2.0.0'],
    ['250 2.x 2.1.0 ok\r\n', undefined],
    ['250 2.1.0ok\r\n', undefined],
    ['250 2.1.1000 ok\r\n', undefined],
  ])('reads %j as %s', (wire, status) => {
    expect(statusOf(wire)).toBe(status);
  });
});

describe('ReplyParser bounds', () => {
  it('takes a reply of exactly maxLines lines and exactly maxReplyBytes bytes', () => {
    const lines = new ReplyParser({ maxLineLength: 8192, maxLines: 3, maxReplyBytes: 1 << 20 });
    expect(lines.push(Buffer.from('250-a\r\n250-b\r\n250 c\r\n'))).toHaveLength(1);
    // Two lines of 50 bytes each (without their CRLF).
    const bytes = new ReplyParser({ maxLineLength: 8192, maxLines: 1000, maxReplyBytes: 100 });
    expect(bytes.push(Buffer.from(`250-${'a'.repeat(46)}\r\n250 ${'b'.repeat(46)}\r\n`))).toHaveLength(1);
  });

  it('names the bounds when a reply exceeds them', () => {
    const parser = new ReplyParser({ maxLineLength: 8192, maxLines: 2, maxReplyBytes: 500 });
    expect(() => parser.push(Buffer.from('250-a\r\n250-b\r\n250 c\r\n'))).toThrow(
      'Reply too large (over 2 lines or 500 bytes)',
    );
  });

  it('counts as buffered both a partial line and the complete lines of an unfinished reply', () => {
    const parser = new ReplyParser();
    parser.push(Buffer.from('250-first\r\n'));
    expect(parser.buffered).toBe('250-first'.length);
    parser.push(Buffer.from('250 se'));
    expect(parser.buffered).toBe('250-first'.length + '250 se'.length);
  });
});

describe('isPositive', () => {
  it.each([
    [199, false],
    [200, true],
    [299, true],
    [300, false],
  ])('takes %i as positive: %s', (code, positive) => {
    expect(isPositive({ code, message: '', lines: [''] })).toBe(positive);
  });
});
