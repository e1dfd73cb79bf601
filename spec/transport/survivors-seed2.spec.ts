import { firstValueFrom } from 'rxjs';
import { SMTPInvalidArgumentError } from '../../lib/errors';
import { resolveEndpoint } from '../../lib/transport/options';
import { FakeServer } from '../helpers/fake-server';
import { Held, greetingOf, hold } from '../helpers/connect';

/* Behaviours of lib/transport/ that a second mutation sample (seed 2) found unpinned. */

describe('lib/transport survivors (seed 2)', () => {
  let fake: FakeServer | undefined;
  let held: Held | undefined;
  afterEach(async () => {
    await held?.release();
    held = undefined;
    await fake?.close();
    fake = undefined;
  });

  it('names the port it could not read in "host:port" (smtplib: nonnumeric port)', () => {
    expect(() => resolveEndpoint({ host: 'mx.example:smtp' }, { port: 25 })).toThrow(
      new SMTPInvalidArgumentError('nonnumeric port: "smtp"'),
    );
  });

  it('times out a QUIT the server never answers as the step "quit"', async () => {
    fake = await FakeServer.start({ handlers: { QUIT: { stall: true } } });
    held = await hold({ host: '127.0.0.1', port: fake.port });
    await greetingOf(held);
    const err = await firstValueFrom(held.connection.quit$({ timeout: 100 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'quit' });
  });
});
