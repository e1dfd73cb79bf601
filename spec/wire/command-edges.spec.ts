import { checkArgument, command } from '../../lib/wire/command';
import { thrown } from '../helpers/thrown';

// Plain JavaScript callers are not held to the types: what they pass must still be checked.
const untyped = (value: unknown) => value as string;

describe('command, from callers the types do not hold', () => {
  it('refuses an argument that is not a string, naming it', () => {
    const err = thrown(() => command('MAIL', ['FROM:<a@x.test>', untyped(1024)]));
    expect(err).toMatchObject({
      code: 'ERR_SMTP_INVALID_ARGUMENT',
      message: 'The argument 2 of MAIL must be a string, not number',
    });
  });

  it('refuses a value that is not a string in checkArgument', () => {
    expect(thrown(() => checkArgument(untyped({ toString: () => 'x' }), 'address')).message).toBe(
      'The address must be a string, not object',
    );
  });

  it('names the argument that holds a line break by its position', () => {
    const err = thrown(() => command('RCPT', ['TO:<b@x.test>', 'NOTIFY=NEVER\r\nDATA']));
    expect(err.message).toBe(
      'The argument 2 of RCPT contains a control character (0x0d) at offset 12; refusing to send it',
    );
  });
});

describe('command verbs', () => {
  it('upper-cases the verb it reports, and sends it as given', () => {
    const cmd = command('ehlo', ['client.test']);
    expect(cmd).toMatchObject({ verb: 'EHLO', line: 'ehlo client.test' });
  });

  it.each([['1EHLO'], ['-XFOO'], ['X FOO'], ['']])('refuses %j as a verb', (verb) => {
    expect(thrown(() => command(verb)).message).toBe(`Not a command verb: ${JSON.stringify(verb)}`);
  });

  it('names the verb when it holds a control character', () => {
    expect(thrown(() => command('NO\nOP')).message).toMatch(/^The command verb contains a control character \(0x0a\)/);
  });
});
