import { DEFAULT_REPLY_LIMITS, ReplyParser } from '../../lib/wire/reply';

/** The codes of the replies `chunks` parse to, or the error code and smtpCode they raise. */
function verdict(chunks: readonly string[]): string {
  const parser = new ReplyParser();
  try {
    return chunks.flatMap((chunk) => parser.push(Buffer.from(chunk, 'latin1'))).map((r) => `${r.code}:${r.message.length}`).join(',');
  } catch (err) {
    const { code, smtpCode } = err as { code?: string; smtpCode?: number };
    return `${code} ${smtpCode ?? ''}`;
  }
}

describe('ReplyParser at the line length limit', () => {
  // Lines around the limit, each ending in CRLF; where a chunk ends must not change the verdict.
  const limit = DEFAULT_REPLY_LIMITS.maxLineLength;
  const lines = [-2, -1, 0, 1, 2].map((delta) => `250 ${'x'.repeat(limit + delta - 4)}`);

  it.each(lines.map((line) => [line.length, line]))('gives a %i-byte line the same verdict whole and split around its CRLF', (_, line) => {
    const whole = verdict([`${line}\r\n`]);
    expect(verdict([line, '\r\n'])).toBe(whole);
    expect(verdict([`${line}\r`, '\n'])).toBe(whole);
    expect(verdict([line.slice(0, 100), `${line.slice(100)}\r`, '\n'])).toBe(whole);
  });

  it('has lines on both sides of the limit among those (the table above is not vacuous)', () => {
    const verdicts = lines.map((line) => verdict([`${line}\r\n`]));
    expect(verdicts.some((v) => v.startsWith('250:'))).toBe(true);
    expect(verdicts.some((v) => v.startsWith('ERR_SMTP_REPLY_LIMIT'))).toBe(true);
  });
});
