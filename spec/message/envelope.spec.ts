import { envelopeFromHeaders, stripBcc } from '../../lib/message/envelope';
import { HeaderField, parseHeaderBlock } from '../../lib/message/header-block';

/** The fields of a header block written with LF line ends (CRLF on the wire, for raw checks). */
function fields(...lines: string[]): readonly HeaderField[] {
  return parseHeaderBlock(new Uint8Array(Buffer.from(lines.map((l) => l + '\r\n').join(''))), new Uint8Array(0)).fields;
}

const text = (data: Uint8Array): string => Buffer.from(data).toString('utf8');

describe('envelopeFromHeaders', () => {
  it('takes the sender from From and the recipients from To, Bcc and Cc', () => {
    const envelope = envelopeFromHeaders(
      fields(
        'From: Ann Sender <ann@example.com>',
        'To: John <john@example.com>',
        'CC: Sally <sally@example.com>, "Smith, Bob" <bob@example.com>',
        'Bcc: Root <root@localhost>',
        'Subject: test',
      ),
    );
    expect(envelope).toEqual({
      from: 'ann@example.com',
      to: ['john@example.com', 'root@localhost', 'sally@example.com', 'bob@example.com'],
    });
  });

  it('reads every To, Cc and Bcc field, not only the first as smtplib does', () => {
    const envelope = envelopeFromHeaders(
      fields(
        'From: a@example.com',
        'To: one@example.com',
        'Cc: two@example.com',
        'To: three@example.com',
        'Bcc: four@example.com',
        'Bcc: five@example.com',
      ),
    );
    expect(envelope.to).toEqual([
      'one@example.com',
      'three@example.com',
      'four@example.com',
      'five@example.com',
      'two@example.com',
    ]);
  });

  it('keeps display names, comments and encoded words out of the envelope', () => {
    const envelope = envelopeFromHeaders(
      fields(
        'From: =?UTF-8?B?w4lsw6luZQ==?= <elene@example.com>',
        'To: "Joe Q. Public" <john.q.public@example.com>, Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>',
        'Cc: (comment) plain@example.com (another)',
      ),
    );
    expect(envelope).toEqual({
      from: 'elene@example.com',
      to: ['john.q.public@example.com', 'pete@silly.test', 'plain@example.com'],
    });
  });

  it('delivers to group members and to nobody for an empty group', () => {
    const envelope = envelopeFromHeaders(
      fields(
        'From: a@example.com',
        'To: undisclosed-recipients:;',
        'Cc: Team: x@example.com, Y <y@example.com>;',
        'Bcc: hidden@example.com',
      ),
    );
    expect(envelope.to).toEqual(['hidden@example.com', 'x@example.com', 'y@example.com']);
  });

  it('reads folded fields', () => {
    const envelope = envelopeFromHeaders(fields('From: a@example.com', 'To: one@example.com,\r\n two@example.com'));
    expect(envelope.to).toEqual(['one@example.com', 'two@example.com']);
  });

  it('names each recipient once', () => {
    const envelope = envelopeFromHeaders(fields('From: a@example.com', 'To: b@example.com', 'Cc: B <b@example.com>'));
    expect(envelope.to).toEqual(['b@example.com']);
  });

  it('prefers Sender over a From with several addresses', () => {
    const envelope = envelopeFromHeaders(
      fields(
        'From: Ann <ann@example.com>, Bob <bob@example.com>',
        'Sender: Secretary <sec@example.com>',
        'To: c@example.com',
      ),
    );
    expect(envelope.from).toBe('sec@example.com');
  });

  it('takes the first From address when there is no Sender (smtplib getaddresses()[0])', () => {
    const envelope = envelopeFromHeaders(fields('From: ann@example.com, bob@example.com', 'To: c@example.com'));
    expect(envelope.from).toBe('ann@example.com');
  });

  it('matches field names whatever their case', () => {
    expect(envelopeFromHeaders(fields('FROM: a@example.com', 'to: b@example.com'))).toEqual({
      from: 'a@example.com',
      to: ['b@example.com'],
    });
  });

  it('keeps a quoted local part quoted, so its @ cannot move the domain', () => {
    const envelope = envelopeFromHeaders(
      fields('From: "x@evil"@good', 'To: "a b"@example.com, "q\\"uote"@example.com'),
    );
    expect(envelope).toEqual({ from: '"x@evil"@good', to: ['"a b"@example.com', '"q\\"uote"@example.com'] });
  });

  it('refuses a source route rather than drop it, as mailboxForWire does for an argument', () => {
    expect(() => envelopeFromHeaders(fields('From: a@example.com', 'To: <@relay.example:joe@example.com>'))).toThrow(
      /source route/,
    );
    expect(() => envelopeFromHeaders(fields('From: <@relay.example:a@example.com>', 'To: b@example.com'))).toThrow(
      /source route/,
    );
  });

  describe('explicit addresses', () => {
    const message = fields('From: a@example.com', 'To: b@example.com', 'Bcc: c@example.com');

    it('win over the headers', () => {
      expect(envelopeFromHeaders(message, { from: 'x@example.org', to: ['y@example.org'] })).toEqual({
        from: 'x@example.org',
        to: ['y@example.org'],
      });
    });

    it('may be given one at a time', () => {
      expect(envelopeFromHeaders(message, { from: 'x@example.org' })).toEqual({
        from: 'x@example.org',
        to: ['b@example.com', 'c@example.com'],
      });
      expect(envelopeFromHeaders(message, { to: ['y@example.org'] })).toEqual({
        from: 'a@example.com',
        to: ['y@example.org'],
      });
    });

    it('let the null reverse path through', () => {
      expect(envelopeFromHeaders(message, { from: '' }).from).toBe('');
    });

    it('spare a malformed header from being read', () => {
      expect(
        envelopeFromHeaders(fields('From: not an address', 'To: b@example.com'), { from: 'x@example.org' }).from,
      ).toBe('x@example.org');
    });

    it('must hold a recipient', () => {
      expect(() => envelopeFromHeaders(message, { to: [] })).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT', message: 'No recipients given' }),
      );
    });
  });

  describe('resent blocks', () => {
    it('uses the Resent- fields when there is exactly one Resent-Date', () => {
      const envelope = envelopeFromHeaders(
        fields(
          'From: original@example.com',
          'To: first@example.com',
          'Resent-Date: Thu, 1 Jan 1970 00:00:00 +0000',
          'Resent-From: holy@grail.net',
          'Resent-To: Martha <my_mom@great.cooker.com>, Jeff',
          '   <jeff@example.com>',
          'Resent-Cc: cc@example.com',
          'Resent-Bcc: doe@losthope.net',
        ),
      );
      expect(envelope).toEqual({
        from: 'holy@grail.net',
        to: ['my_mom@great.cooker.com', 'jeff@example.com', 'doe@losthope.net', 'cc@example.com'],
      });
    });

    it('prefers Resent-Sender over Resent-From', () => {
      const envelope = envelopeFromHeaders(
        fields(
          'Resent-Date: now',
          'Resent-From: a@example.com, b@example.com',
          'Resent-Sender: s@example.com',
          'Resent-To: t@example.com',
        ),
      );
      expect(envelope.from).toBe('s@example.com');
    });

    it('refuses a message with two resent blocks, naming the problem', () => {
      const message = fields(
        'From: a@example.com',
        'To: b@example.com',
        'Resent-Date: one',
        'Resent-To: c@example.com',
        'Resent-Date: two',
        'Resent-To: d@example.com',
      );
      expect(() => envelopeFromHeaders(message)).toThrow("message has more than one 'Resent-' header block");
      expect(() => envelopeFromHeaders(message, { from: 'x@y', to: ['z@y'] })).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
      );
    });
  });

  describe('refuses before anything is sent', () => {
    it.each([
      ['no sender', ['To: b@example.com'], /no sender/],
      ['an empty From', ['From:', 'To: b@example.com'], /no sender/],
      ['no recipients', ['From: a@example.com', 'Subject: x'], /no recipients/],
      ['only an empty group', ['From: a@example.com', 'To: undisclosed-recipients:;', 'Bcc:'], /no recipients/],
      [
        'a resent block without Resent-From',
        ['From: a@example.com', 'Resent-Date: now', 'Resent-To: b@example.com'],
        /no sender.*Resent-From/,
      ],
      [
        'a malformed To',
        ['From: a@example.com', 'To: b@example.com c@example.com'],
        /To header is not a valid address list/,
      ],
    ])('a message with %s', (_, lines, message) => {
      expect(() => envelopeFromHeaders(fields(...lines))).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT', message: expect.stringMatching(message) }),
      );
    });
  });
});

describe('stripBcc', () => {
  it('drops every Bcc and Resent-Bcc field, folded lines included, and keeps the rest byte for byte', () => {
    const message = fields(
      'From: a@example.com',
      'Bcc: x@example.com,\r\n\ty@example.com',
      'To: b@example.com',
      'bcc: z@example.com',
      'Resent-Bcc: r@example.com',
      'Subject:  keep\tme ',
    );
    expect(text(stripBcc(message))).toBe('From: a@example.com\r\nTo: b@example.com\r\nSubject:  keep\tme \r\n');
  });

  it('leaves the fields it was given untouched', () => {
    const message = fields('From: a@example.com', 'Bcc: x@example.com');
    const before = message.map((f) => ({ ...f, raw: f.raw.slice() }));
    stripBcc(message);
    expect(message).toEqual(before);
  });

  it('returns the block unchanged when there is no Bcc', () => {
    const message = fields('From: a@example.com', 'To: b@example.com');
    expect(text(stripBcc(message))).toBe('From: a@example.com\r\nTo: b@example.com\r\n');
  });
});
