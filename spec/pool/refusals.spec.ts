import { SMTPRecipientsRefused, SMTPResponseException } from '../../lib/errors';
import { refusalsAfter, transientRefusals } from '../../lib/pool/outcome';
import { Reply } from '../../lib/wire/reply';

const reply = (code: number): Reply => ({ code, message: `${code} x`, lines: [`${code} x`] });

describe('transientRefusals: the refused recipients worth a follow-up (4yz, RFC 5321 §4.2.1)', () => {
  it('keeps 400 to 499 and nothing around them', () => {
    const refused = {
      'a@x': reply(399),
      'b@x': reply(400),
      'c@x': reply(450),
      'd@x': reply(499),
      'e@x': reply(500),
      'f@x': reply(550),
    };
    expect(transientRefusals(refused)).toEqual(['b@x', 'c@x', 'd@x']);
  });

  it('finds none among permanent refusals', () => {
    expect(transientRefusals({ 'a@x': reply(550), 'b@x': reply(553) })).toEqual([]);
  });
});

describe('refusalsAfter: what a failed follow-up says about its recipients', () => {
  const before = { 'a@x': reply(450), 'b@x': reply(451), 'c@x': reply(550) };

  it('takes each recipient’s own refusal when the follow-up refused them all', () => {
    const err = new SMTPRecipientsRefused({ 'a@x': reply(550), 'b@x': reply(452) });
    expect(refusalsAfter(err, ['a@x', 'b@x'], before)).toEqual({ 'a@x': reply(550), 'b@x': reply(452) });
  });

  it('keeps the refusals the retried recipients had when the failure says nothing per recipient', () => {
    const err = new SMTPResponseException(421, 'closing');
    expect(refusalsAfter(err, ['a@x', 'b@x'], before)).toEqual({ 'a@x': reply(450), 'b@x': reply(451) });
  });
});
