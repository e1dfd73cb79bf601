import fc from 'fast-check';
import { from, lastValueFrom, tap } from 'rxjs';
import { DEFAULT_REPLY_LIMITS, Reply, ReplyLimits, parseReplies } from '../../lib/wire/reply';

/**
 * The reply parser against a reference model: the model reads the whole byte stream at once,
 * line by line, the obvious way; the parser gets it cut anywhere. Whatever the cuts, both must
 * give the same replies and fail at the same point for the same reason.
 */

type Outcome = { replies: Reply[]; error?: string };

// RFC 3463 §2: class.subject.detail, the class agreeing with the reply code.
const ENHANCED = /^([245])\.\d{1,3}\.\d{1,3}(?=[ \t]|$)/;

function modelReply(code: number, lines: string[]): Reply {
  const status = ENHANCED.exec(lines[0] ?? '');
  const reply = { code, message: lines.join('\n'), lines };
  return status && Number(status[1]) === Math.floor(code / 100) ? { ...reply, enhancedStatus: status[0] } : reply;
}

/**
 * The model: lines end at LF, a CR before it dropped (smtplib's readline). A line, its line end
 * included, may not be longer than `maxLineLength`: nor may a line still unterminated when the
 * stream ends, once its LF is counted. `ddd-` continues a reply; `ddd text` or `ddd` ends it.
 */
function model(stream: Buffer, limits: ReplyLimits): Outcome {
  const replies: Reply[] = [];
  let lines: string[] = [];
  let code = 0;
  let bytes = 0;
  for (let start = 0; ;) {
    const lf = stream.indexOf(0x0a, start);
    if (lf === -1) {
      const tail = stream.length - start;
      return tail > 0 && tail + 1 > limits.maxLineLength ? { replies, error: 'ERR_SMTP_REPLY_LIMIT' } : { replies };
    }
    if (lf + 1 - start > limits.maxLineLength) return { replies, error: 'ERR_SMTP_REPLY_LIMIT' };
    const text = stream.toString('latin1', start, stream[lf - 1] === 0x0d && lf > start ? lf - 1 : lf);
    start = lf + 1;
    if (!/^\d{3}(?:[ -]|$)/.test(text)) return { replies, error: 'ERR_SMTP_PROTOCOL' };
    if (lines.length > 0 && Number(text.slice(0, 3)) !== code) return { replies, error: 'ERR_SMTP_PROTOCOL' };
    code = Number(text.slice(0, 3));
    bytes += text.length;
    lines.push(text.slice(4).replace(/^[ \t]+|[ \t]+$/g, ''));
    if (lines.length > limits.maxLines || bytes > limits.maxReplyBytes)
      return { replies, error: 'ERR_SMTP_REPLY_LIMIT' };
    if (text[3] === '-') continue;
    replies.push(modelReply(code, lines));
    lines = [];
    bytes = 0;
  }
}

/** What `parseReplies` makes of the stream cut at `cuts`. */
async function parse(stream: Buffer, cuts: readonly number[], limits: ReplyLimits): Promise<Outcome> {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks = [0, ...points].map((at, i) => stream.subarray(at, points[i] ?? stream.length));
  const replies: Reply[] = [];
  try {
    await lastValueFrom(
      from(chunks).pipe(
        parseReplies(limits),
        tap((r) => replies.push(r)),
      ),
      { defaultValue: undefined },
    );
    return { replies };
  } catch (err) {
    return { replies, error: (err as { code: string }).code };
  }
}

// Text with the blanks, dots and digits that trimming and enhanced status codes care about.
const text = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', 'Z', ' ', '\t', '.', '2', '5', '-'), maxLength: 30 }),
  fc
    .tuple(
      fc.constantFrom('2', '3', '4', '5'),
      fc.nat(1000),
      fc.nat(1000),
      fc.constantFrom('', ' ok', '\tok ', 'x', ' '),
    )
    .map(([cls, subject, detail, rest]) => `${cls}.${subject}.${detail}${rest}`),
);
const code = fc.constantFrom('220', '250', '251', '354', '421', '452', '550', '554');
const lineEnd = fc.constantFrom('\r\n', '\n');

/** A well-formed reply: `ddd-` lines, then a last line `ddd text` or a bare `ddd`. */
const reply = fc
  .tuple(code, fc.array(fc.tuple(text, lineEnd), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([c, lines, bare]) =>
    lines
      .map(([t, end], i) =>
        i < lines.length - 1 ? `${c}-${t}${end}` : bare && t === '' ? `${c}${end}` : `${c} ${t}${end}`,
      )
      .join(''),
  );

/** What a hostile or broken server may slip in: malformed lines, a code change, an unterminated tail, a long line. */
const fault = fc.oneof(
  fc.constantFrom(
    '25 short\r\n',
    '2500 x\r\n',
    'abc\r\n',
    '250_x\n',
    '\r\n',
    '250-a\r\n251 b\r\n',
    '250 tail without LF',
  ),
  fc.integer({ min: 1, max: 300 }).map((n) => `250 ${'x'.repeat(n)}\r\n`),
);

const stream = fc
  .array(fc.oneof({ weight: 6, arbitrary: reply }, { weight: 1, arbitrary: fault }), { maxLength: 8 })
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

const limits: fc.Arbitrary<ReplyLimits> = fc.oneof(
  fc.constant(DEFAULT_REPLY_LIMITS),
  fc.record({
    maxLineLength: fc.integer({ min: 6, max: 60 }),
    maxLines: fc.integer({ min: 1, max: 5 }),
    maxReplyBytes: fc.integer({ min: 4, max: 200 }),
  }),
);

const cuts = fc.array(fc.nat(), { maxLength: 12 });

describe('parseReplies (property-based)', () => {
  it('gives the model’s replies and error whatever the segmentation', async () => {
    await fc.assert(
      fc.asyncProperty(stream, limits, cuts, async (bytes, bounds, at) => {
        expect(await parse(bytes, at, bounds)).toEqual(model(bytes, bounds));
      }),
      { numRuns: 800 },
    );
  });

  it('gives the same result cut between every two bytes', async () => {
    await fc.assert(
      fc.asyncProperty(stream, limits, async (bytes, bounds) => {
        const everyByte = Array.from({ length: bytes.length }, (_, i) => i);
        expect(await parse(bytes, everyByte, bounds)).toEqual(model(bytes, bounds));
      }),
      { numRuns: 300 },
    );
  });

  it('takes lines of exactly the limit and refuses one byte more, however the line end is cut', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 6, max: 200 }), lineEnd, fc.boolean(), cuts, async (max, end, over, at) => {
        const bounds = { ...DEFAULT_REPLY_LIMITS, maxLineLength: max };
        const line = Buffer.from(`250 ${'x'.repeat(max - 4 - end.length + (over ? 1 : 0))}${end}`, 'latin1');
        const outcome = await parse(line, at, bounds);
        expect(outcome.error).toBe(over ? 'ERR_SMTP_REPLY_LIMIT' : undefined);
        expect(outcome).toEqual(model(line, bounds));
      }),
      { numRuns: 300 },
    );
  });
});
