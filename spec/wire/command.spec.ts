import { SMTPInvalidArgumentError } from '../../lib/errors';
import { checkArgument, command, encodeCommands } from '../../lib/wire/command';

describe('command', () => {
  it('joins the verb and its arguments with single spaces', () => {
    const cmd = command('MAIL', ['FROM:<a@example.com>', '', 'SIZE=10']);
    expect(cmd.line).toBe('MAIL FROM:<a@example.com> SIZE=10');
    expect(encodeCommands([cmd]).toString()).toBe('MAIL FROM:<a@example.com> SIZE=10\r\n');
  });

  it('encodes a group of commands into one buffer, each line ended by CRLF', () => {
    const group = [command('MAIL', ['FROM:<a@example.com>']), command('RCPT', ['TO:<b@example.com>']), command('DATA')];
    expect(encodeCommands(group).toString()).toBe('MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n');
  });

  it.each([
    ['CR', 'host\rname'],
    ['LF', 'host\nname'],
    ['CRLF', 'host\r\nRCPT TO:<x@evil>'],
    ['NUL', 'host\0'],
    ['ESC', 'a\x1bb'],
    ['DEL', 'a\x7fb'],
  ])('refuses an argument holding %s', (_name, arg) => {
    expect(() => command('EHLO', [arg])).toThrow(SMTPInvalidArgumentError);
  });

  it('allows TAB inside an argument', () => {
    expect(command('HELP', ['a\tb']).line).toBe('HELP a\tb');
  });

  it('refuses a verb that is not a verb', () => {
    expect(() => command('MAIL FROM:<x>', [])).toThrow(SMTPInvalidArgumentError);
  });

  it('names the argument and the offending character in the error', () => {
    expect(() => checkArgument('a\nb', 'local host name')).toThrow(/local host name.*0x0a/);
  });

  it('redacts secret commands in their debug text', () => {
    const cmd = command('AUTH', ['PLAIN', 'AHVzZXIAcGFzcw=='], { secret: true });
    expect(cmd.debugText).toBe('AUTH ****');
  });
});
