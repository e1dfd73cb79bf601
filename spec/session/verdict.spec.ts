import fc from 'fast-check';
import { Envelope } from '../../lib/session/envelope';
import { TransactionReplies, acceptedRecipients, envelopeVerdict, transactionVerdict } from '../../lib/session/verdict';
import { command } from '../../lib/wire/command';
import { Reply } from '../../lib/wire/reply';

const reply = (code: number, text = 'x'): Reply => ({ code, message: text, lines: [text] });
const envelopeOf = (recipients: readonly string[], mode: 'data' | 'bdat' = 'data'): Envelope => ({
  sender: 'a@x.test',
  mail: command('MAIL', ['FROM:<a@x.test>']),
  recipients: recipients.map((address) => ({ address, rcpt: command('RCPT', [`TO:<${address}>`]) })),
  mode,
  binary: false,
});
const replies = (r: Partial<TransactionReplies>): TransactionReplies => ({ rcpts: [], chunks: [], finals: [], ...r });

describe('the transaction verdict (a pure function of the replies)', () => {
  const two = envelopeOf(['b@x.test', 'c@x.test']);

  it.each([
    ['every recipient accepted', [250, 250], 354, [250], { type: 'sent', refused: {} }],
    [
      '251 (will forward) accepts a recipient',
      [251, 550],
      354,
      [250],
      { type: 'sent', refused: { 'c@x.test': { code: 550 } } },
    ],
    [
      'a 4xx recipient is refused, the message still sent',
      [450, 250],
      354,
      [250],
      { type: 'sent', refused: { 'b@x.test': { code: 450 } } },
    ],
    ['every recipient refused', [550, 551], 354, [], { type: 'error', error: { code: 'ERR_SMTP_RECIPIENTS_REFUSED' } }],
    ['DATA refused', [250, 250], 554, [], { type: 'error', error: { code: 'ERR_SMTP_DATA', smtpCode: 554 } }],
    [
      'the final dot refused',
      [250, 250],
      354,
      [552],
      { type: 'error', error: { code: 'ERR_SMTP_DATA', smtpCode: 552 } },
    ],
    ['a 421 to a RCPT ends it', [250, 421], 354, [], { type: 'error', error: { code: 'ERR_SMTP_RECIPIENTS_REFUSED' } }],
  ])('SMTP, %s', (_name, rcpts, data, finals, expected) => {
    const verdict = transactionVerdict(
      two,
      replies({
        mail: reply(250),
        rcpts: rcpts.map((c) => reply(c)),
        data: reply(data),
        finals: finals.map((c) => reply(c)),
      }),
      false,
    );
    expect(verdict).toMatchObject(expected);
  });

  it('reports the refused sender, whatever the RCPT replies say ("need MAIL" is not their fate)', () => {
    const verdict = transactionVerdict(
      two,
      replies({ mail: reply(550), rcpts: [reply(503), reply(503)], data: reply(503) }),
      false,
    );
    expect(verdict).toMatchObject({
      type: 'error',
      error: { code: 'ERR_SMTP_SENDER_REFUSED', smtpCode: 550, sender: 'a@x.test' },
    });
    expect(acceptedRecipients(two, replies({ mail: reply(550), rcpts: [reply(250), reply(250)] }))).toEqual([]);
  });

  it('waits while recipients are still unanswered (no verdict on a partial envelope)', () => {
    expect(envelopeVerdict(two, replies({ mail: reply(250), rcpts: [reply(550)] }))).toBeUndefined();
  });

  it('LMTP: a message fails only when every delivery did; failed deliveries join the refused map', () => {
    const three = envelopeOf(['b@x.test', 'c@x.test', 'd@x.test']);
    const base = { mail: reply(250), rcpts: [reply(250), reply(550), reply(250)], data: reply(354) };
    expect(transactionVerdict(three, replies({ ...base, finals: [reply(452), reply(250)] }), true)).toMatchObject({
      type: 'sent',
      refused: { 'c@x.test': { code: 550 }, 'b@x.test': { code: 452 } },
    });
    expect(transactionVerdict(three, replies({ ...base, finals: [reply(452), reply(552)] }), true)).toMatchObject({
      type: 'error',
      error: { code: 'ERR_SMTP_DATA', smtpCode: 552 },
    });
  });

  it('BDAT: a refused chunk before the last decides, even when BDAT LAST was accepted', () => {
    const verdict = transactionVerdict(
      envelopeOf(['b@x.test'], 'bdat'),
      replies({ mail: reply(250), rcpts: [reply(250)], chunks: [reply(250), reply(552)], finals: [reply(250)] }),
      false,
    );
    expect(verdict).toMatchObject({ type: 'error', error: { code: 'ERR_SMTP_DATA', smtpCode: 552 } });
  });

  describe('over random reply sequences', () => {
    const CODES = [250, 251, 354, 421, 450, 451, 452, 500, 503, 550, 551, 552, 554];
    // Mostly the happy code, so that long accepted envelopes (and LMTP's many final replies) are common.
    const code = fc.oneof(
      { arbitrary: fc.constantFrom(250, 251, 354), weight: 3 },
      { arbitrary: fc.constantFrom(...CODES), weight: 2 },
    );
    const scenario = fc
      .record({
        lmtp: fc.boolean(),
        mode: fc.constantFrom<'data' | 'bdat'>('data', 'bdat'),
        mail: code,
        rcpts: fc.array(code, { minLength: 1, maxLength: 5 }),
        data: code,
        chunks: fc.array(code, { maxLength: 3 }),
        finals: fc.array(code, { minLength: 5, maxLength: 5 }),
      })
      .map((s) => {
        const envelope = envelopeOf(
          s.rcpts.map((_, i) => `r${i}@x.test`),
          s.mode,
        );
        const accepted = s.mail === 250 ? s.rcpts.filter((c) => c === 250 || c === 251).length : 0;
        // SMTP answers the end of data once; LMTP once per accepted recipient (RFC 2033 §4.2).
        const finals = s.finals.slice(0, s.lmtp ? Math.max(accepted, 1) : 1);
        const r = replies({
          mail: reply(s.mail),
          rcpts: s.rcpts.map((c) => reply(c)),
          ...(s.mode === 'data' ? { data: reply(s.data) } : {}),
          chunks: s.mode === 'bdat' ? s.chunks.map((c) => reply(c)) : [],
          finals: finals.map((c) => reply(c)),
        });
        return { ...s, envelope, replies: r, finals };
      });

    it('is sent exactly when MAIL, some RCPT, DATA, every chunk and the end of data were accepted', () => {
      fc.assert(
        fc.property(scenario, (s) => {
          const verdict = transactionVerdict(s.envelope, s.replies, s.lmtp);
          const someAccepted = s.rcpts.some((c) => c === 250 || c === 251);
          const ended = s.lmtp ? s.finals.includes(250) : s.finals[0] === 250;
          const shouldSend =
            s.mail === 250 &&
            someAccepted &&
            !s.rcpts.includes(421) &&
            (s.mode === 'bdat' || s.data === 354) &&
            (s.mode === 'data' || s.chunks.every((c) => c === 250)) &&
            ended;
          expect(verdict.type).toBe(shouldSend ? 'sent' : 'error');
        }),
        { numRuns: 2000 },
      );
    });

    it('refuses with the sender error whenever MAIL was refused', () => {
      fc.assert(
        fc.property(scenario, (s) => {
          const verdict = transactionVerdict(s.envelope, s.replies, s.lmtp);
          if (s.mail !== 250)
            expect(verdict).toMatchObject({
              type: 'error',
              error: { code: 'ERR_SMTP_SENDER_REFUSED', smtpCode: s.mail },
            });
        }),
        { numRuns: 500 },
      );
    });

    it('when sent, refuses exactly the recipients whose RCPT (or, in LMTP, whose delivery) was refused', () => {
      fc.assert(
        fc.property(scenario, (s) => {
          const verdict = transactionVerdict(s.envelope, s.replies, s.lmtp);
          if (verdict.type !== 'sent') return;
          const expected = new Set<string>();
          let k = 0;
          s.rcpts.forEach((c, i) => {
            if (c !== 250 && c !== 251) expected.add(`r${i}@x.test`);
            else if (s.lmtp && s.finals[k++] !== 250) expected.add(`r${i}@x.test`);
          });
          expect(new Set(Object.keys(verdict.refused))).toEqual(expected);
          expect(verdict.reply).toBe(s.replies.finals[s.replies.finals.length - 1]);
        }),
        { numRuns: 2000 },
      );
    });
  });
});
