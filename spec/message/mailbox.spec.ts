import { mailboxForWire, reversePathForWire } from '../../lib/message/mailbox';

const ascii = { smtputf8: false };
const utf8 = { smtputf8: true };

describe('mailboxForWire', () => {
  it.each([
    ['a plain address', 'user@example.com', '<user@example.com>'],
    [
      'a Dot-string with every atext character',
      "a.b!#$%&'*+-/=?^_`{|}~@example.com",
      "<a.b!#$%&'*+-/=?^_`{|}~@example.com>",
    ],
    ['a display name, dropped', 'Joe Public <joe@example.com>', '<joe@example.com>'],
    ['angle brackets alone', '<joe@example.com>', '<joe@example.com>'],
    ['comments around the address', '(c) a@b (d)', '<a@b>'],
    ['comments inside the address', 'pete(his account)@silly.test(his host)', '<pete@silly.test>'],
    ['a quoted local part holding an @, whose domain stays good', '"x@evil"@good', '<"x@evil"@good>'],
    ['a needlessly quoted local part, unquoted', '"joe"@example.com', '<joe@example.com>'],
    ['a quoted blank', '"john smith"@example.com', '<"john smith"@example.com>'],
    ['a quoted " and \\, escaped', '"a\\"b\\\\c"@example.com', '<"a\\"b\\\\c"@example.com>'],
    [
      'a quoted ORCPT= after a blank (no > to end the path early)',
      '"a@x ORCPT=rfc822;b"@d',
      '<"a@x ORCPT=rfc822;b"@d>',
    ],
    ['a domain kept in its case', 'A@Example.COM', '<A@Example.COM>'],
    ['an IPv4 literal', 'a@[192.0.2.1]', '<a@[192.0.2.1]>'],
    ['an IPv6 literal', 'a@[IPv6:2001:db8::1]', '<a@[IPv6:2001:db8::1]>'],
    ['a non-ASCII domain, as punycode', 'user@bücher.example', '<user@xn--bcher-kva.example>'],
  ])('writes %s', (_, address, wire) => {
    expect(mailboxForWire(address, ascii)).toEqual({ wire, needsSmtputf8: false });
  });

  it.each([
    ['a quoted > that would end the path early', '"a@x> ORCPT=rfc822;b"@d', /'<' or '>'/],
    ['a quoted <', '"a<b"@d', /'<' or '>'/],
    ['a bare ORCPT= after a blank', 'a@x ORCPT=rfc822;b@d', /not a mailbox/],
    ['an ESMTP parameter after the brackets', '<a@b> SIZE=1', /not a mailbox/],
    ['CR LF inside quotes', '"a\r\nRCPT TO:<x@evil>"@d', /control character/],
    ['a bare LF inside quotes', '"a\nb"@d', /control character/],
    ['a NUL', 'a\0@d', /control character/],
    ['a TAB inside quotes', '"a\tb"@d', /TAB/],
    ['a DEL', '"a\x7fb"@d', /control character/],
    ['a C1 control inside quotes', '"a\u0085b"@d', /control character/],
    ['a source route', '<@a,@b:c@d>', /source route/],
    ['a bare source route', '@a,@b:c@d', /not a mailbox/],
    ['two addresses', 'a@b, c@d', /not a mailbox/],
    ['a group', 'g: a@b;', /not a mailbox/],
    ['no domain', 'postmaster', /not a mailbox/],
    ['an empty string', '', /not a mailbox/],
    ['an empty quoted local part', '""@d', /empty local part/],
    ['a domain with an underscore', 'a@b_c.example', /invalid domain/],
    ['a domain label starting with a hyphen', 'a@-b.example', /invalid domain/],
    ['a general address literal', 'a@[x-tag:stuff]', /neither IPv4 nor IPv6/],
    ['a literal that is no IP', 'a@[999.1.1.1]', /neither IPv4 nor IPv6/],
    ['a domain literal hiding a >', 'a@[x> y=z]', /neither IPv4 nor IPv6/],
    ['an invalid IDN', 'a@xn--a.example', /invalid domain/],
  ])('refuses %s', (_, address, message) => {
    expect(() => mailboxForWire(address, utf8)).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT', message: expect.stringMatching(message) }),
    );
  });

  it('refuses a non-string', () => {
    expect(() => mailboxForWire(42 as unknown as string, ascii)).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
    );
  });

  describe('SMTPUTF8 (RFC 6531)', () => {
    it('needs no SMTPUTF8 for a non-ASCII domain under an ASCII local part', () => {
      expect(mailboxForWire('info@例え.テスト', ascii)).toEqual({
        wire: '<info@xn--r8jz45g.xn--zckzah>',
        needsSmtputf8: false,
      });
      expect(mailboxForWire('info@例え.テスト', utf8).needsSmtputf8).toBe(false);
    });

    it('sends a UTF-8 local part when the server offers SMTPUTF8, saying it needs it', () => {
      expect(mailboxForWire('jörg@bücher.example', utf8)).toEqual({
        wire: '<jörg@xn--bcher-kva.example>',
        needsSmtputf8: true,
      });
      expect(mailboxForWire('"jörg müller"@example.com', utf8)).toEqual({
        wire: '<"jörg müller"@example.com>',
        needsSmtputf8: true,
      });
    });

    it('refuses a UTF-8 local part when the server does not offer SMTPUTF8', () => {
      expect(() => mailboxForWire('jörg@example.com', ascii)).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_NOT_SUPPORTED' }),
      );
    });

    it('refuses a lone surrogate', () => {
      expect(() => mailboxForWire('a\ud800@example.com', utf8)).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
      );
    });
  });
});

describe('reversePathForWire', () => {
  it.each(['', '<>', '  '])('writes the null reverse path for %j', (address) => {
    expect(reversePathForWire(address, ascii)).toEqual({ wire: '<>', needsSmtputf8: false });
  });

  it('checks any other address as a mailbox', () => {
    expect(reversePathForWire('Ann <ann@example.com>', ascii).wire).toBe('<ann@example.com>');
    expect(() => reversePathForWire('"a>b"@c', ascii)).toThrow(
      expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
    );
  });
});
