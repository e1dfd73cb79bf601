import { firstValueFrom } from 'rxjs';
import { SMTPInvalidArgumentError } from '../../lib/errors';
import { resolveEndpoint } from '../../lib/transport/options';
import { fakeConnections } from '../helpers/connect';

/* Behaviours of lib/transport/ that a second mutation sample (seed 2) found unpinned. */

describe('lib/transport survivors (seed 2)', () => {
  const bench = fakeConnections();

  it('names the port it could not read in "host:port" (smtplib: nonnumeric port)', () => {
    expect(() => resolveEndpoint({ host: 'mx.example:smtp' }, { port: 25 })).toThrow(
      new SMTPInvalidArgumentError('nonnumeric port: "smtp"'),
    );
  });

  it('times out a QUIT the server never answers as the step "quit"', async () => {
    const held = await bench.open({ handlers: { QUIT: { stall: true } } });
    const err = await firstValueFrom(held.connection.quit$({ timeout: 100 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_SMTP_TIMEOUT', step: 'quit' });
  });
});
