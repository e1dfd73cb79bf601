import { Subject, firstValueFrom, from, lastValueFrom, tap, toArray } from 'rxjs';
import { SMTPProtocolError, SMTPReplyLimitError } from '../../lib/errors';
import { Reply, ReplyParser, parseReplies } from '../../lib/wire/reply';
import { defined } from '../helpers/defined';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const parseChunks = (chunks: string[]): Promise<Reply[]> =>
  firstValueFrom(from(chunks.map(bytes)).pipe(parseReplies(), toArray()));

describe('parseReplies', () => {
  it('parses a one-line reply', async () => {
    expect(await parseChunks(['250 2.1.0 Ok\r\n'])).toEqual([
      { code: 250, message: '2.1.0 Ok', lines: ['2.1.0 Ok'], enhancedStatus: '2.1.0' },
    ]);
  });

  it('joins a multi-line reply with "\\n" as smtplib does', async () => {
    const reply = defined((await parseChunks(['250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n']))[0], 'a reply');
    expect(reply.code).toBe(250);
    expect(reply.message).toBe('mx.test\nPIPELINING\nSIZE 100');
    expect(reply.enhancedStatus).toBeUndefined();
  });

  it('accepts a bare code and a bare LF line ending', async () => {
    expect(await parseChunks(['354\n'])).toEqual([{ code: 354, message: '', lines: [''] }]);
  });

  it('reassembles lines split at every possible offset, even inside CRLF', async () => {
    const wire = '220-hello\r\n220 world\r\n250 2.0.0 ok\r\n';
    const whole = await parseChunks([wire]);
    for (let i = 1; i < wire.length; i++) {
      for (let j = i + 1; j < wire.length; j++) {
        expect(await parseChunks([wire.slice(0, i), wire.slice(i, j), wire.slice(j)])).toEqual(whole);
      }
    }
  });

  it('emits several replies from one chunk, in order', async () => {
    const replies = await parseChunks(['250 a\r\n251 b\r\n354 c\r\n']);
    expect(replies.map((r) => r.code)).toEqual([250, 251, 354]);
  });

  it('ignores an enhanced status whose class disagrees with the code', async () => {
    const reply = defined((await parseChunks(['550 2.1.0 odd\r\n']))[0], 'a reply');
    expect(reply.enhancedStatus).toBeUndefined();
  });

  // smtplib's _MAXLINE: 8192 bytes per line, its CRLF included.
  const lineOf = (total: number, end = '\r\n'): string => `250 ${'x'.repeat(total - 4 - end.length)}${end}`;

  it('takes a reply line of 8192 bytes, CRLF included', async () => {
    const line = lineOf(8192);
    expect(line).toHaveLength(8192);
    const reply = defined((await parseChunks([line.slice(0, 5000), line.slice(5000)]))[0], 'a reply');
    expect(reply.message).toHaveLength(8186);
  });

  it('takes a reply line of 8192 bytes whose CR ends one chunk and LF starts the next', async () => {
    const line = lineOf(8192);
    const reply = defined((await parseChunks([line.slice(0, -1), line.slice(-1)]))[0], 'a reply');
    expect(reply.message).toHaveLength(8186);
  });

  it('takes a reply line of 8192 bytes ended by a bare LF', async () => {
    const reply = defined((await parseChunks([lineOf(8192, '\n')]))[0], 'a reply');
    expect(reply.message).toHaveLength(8187);
  });

  it.each([
    ['8193 bytes', [lineOf(8193)]],
    ['8194 bytes', [lineOf(8194)]],
    ['8193 bytes ended by a bare LF', [lineOf(8193, '\n')]],
    ['8193 bytes whose CR ends a chunk', [lineOf(8193).slice(0, -1), '\n']],
  ])('refuses a reply line of %s with "Line too long."', async (_name, chunks) => {
    const err = await parseChunks(chunks).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_SMTP_REPLY_LIMIT', message: 'Line too long.' });
  });

  it('reports a limit as a protocol error of ours, not as a reply of the server', async () => {
    const err = await parseChunks([lineOf(8193)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SMTPReplyLimitError);
    expect(err).toBeInstanceOf(SMTPProtocolError);
    expect(err).not.toHaveProperty('smtpCode');
  });

  it('refuses an over-long line before its end arrives (no unbounded buffering)', () => {
    const parser = new ReplyParser();
    expect(() => parser.push(bytes(`250 ${'x'.repeat(9000)}`))).toThrow('Line too long.');
  });

  it('bounds the lines in one reply', () => {
    const parser = new ReplyParser({ maxLineLength: 8192, maxLines: 3, maxReplyBytes: 1 << 20 });
    expect(() => parser.push(bytes('250-a\r\n250-b\r\n250-c\r\n250-d\r\n'))).toThrow(SMTPReplyLimitError);
  });

  it('bounds the bytes in one reply', () => {
    const parser = new ReplyParser({ maxLineLength: 8192, maxLines: 1000, maxReplyBytes: 100 });
    expect(() => parser.push(bytes(`250-${'a'.repeat(60)}\r\n250-${'b'.repeat(60)}\r\n`))).toThrow(SMTPReplyLimitError);
  });

  it.each([['25 short\r\n'], ['2500 long\r\n'], ['abc text\r\n'], ['250_x\r\n']])(
    'refuses the malformed line %j',
    async (line) => {
      await expect(parseChunks([line])).rejects.toBeInstanceOf(SMTPProtocolError);
    },
  );

  it('emits the replies completed before a violation in the same chunk, then errors', async () => {
    const seen: Reply[] = [];
    const err = await lastValueFrom(
      from([bytes('250 2.0.0 queued\r\n25 short\r\n')]).pipe(
        parseReplies(),
        tap((r) => seen.push(r)),
      ),
    ).catch((e: unknown) => e);
    expect(seen.map((r) => r.message)).toEqual(['2.0.0 queued']);
    expect(err).toMatchObject({ code: 'ERR_SMTP_PROTOCOL' });
  });

  it('keeps the replies completed before a violation in the array passed to push', () => {
    const parser = new ReplyParser();
    const replies: Reply[] = [];
    expect(() => parser.push(bytes(`250 ok\r\n250 ${'x'.repeat(9000)}`), replies)).toThrow('Line too long.');
    expect(replies.map((r) => r.code)).toEqual([250]);
  });

  it('refuses a code change inside a multi-line reply', async () => {
    await expect(parseChunks(['250-a\r\n251 b\r\n'])).rejects.toThrow('Reply code changed');
  });

  it('completes with its source, emits nothing for an empty source', async () => {
    expect(await parseChunks([])).toEqual([]);
  });

  it('passes an upstream error through', async () => {
    const source = new Subject<Uint8Array>();
    const result = firstValueFrom(source.pipe(parseReplies(), toArray()));
    source.error(new Error('boom'));
    await expect(result).rejects.toThrow('boom');
  });

  it('stops listening when unsubscribed', () => {
    const source = new Subject<Uint8Array>();
    const seen: Reply[] = [];
    const sub = source.pipe(parseReplies()).subscribe((r) => seen.push(r));
    sub.unsubscribe();
    source.next(bytes('250 ok\r\n'));
    expect(seen).toEqual([]);
    expect(source.observed).toBe(false);
  });
});
