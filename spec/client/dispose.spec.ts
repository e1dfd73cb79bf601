import { lastValueFrom } from 'rxjs';
import { LMTP, SMTP, SMTP_SSL } from '../../lib';
import { FakeServer } from '../helpers/fake-server';

describe('await using (Symbol.asyncDispose)', () => {
  let fake: FakeServer | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('is on SMTP, SMTP_SSL and LMTP', () => {
    for (const Client of [SMTP, SMTP_SSL, LMTP]) expect(typeof new Client()[Symbol.asyncDispose]).toBe('function');
  });

  it('says QUIT when the block ends on an idle connection', async () => {
    fake = await FakeServer.start();
    {
      await using smtp = new SMTP({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' });
      await lastValueFrom(smtp.connect$());
      await lastValueFrom(smtp.noop$());
    }
    await fake.closedSession();
    expect(fake.session.commands).toEqual(['NOOP', 'QUIT']);
  });

  it('says QUIT when the block throws, and lets the error through', async () => {
    fake = await FakeServer.start();
    const block = async (): Promise<void> => {
      await using smtp = new SMTP({ host: '127.0.0.1', port: fake!.port, localHostname: 'c.test' });
      await lastValueFrom(smtp.connect$());
      throw new Error('the caller failed');
    };
    await expect(block()).rejects.toThrow('the caller failed');
    await fake.closedSession();
    expect(fake.session.commands).toEqual(['QUIT']);
  });

  it('closes without QUIT while a reply is still owed', async () => {
    fake = await FakeServer.start({ handlers: { NOOP: { stall: true } } });
    const smtp = new SMTP({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' });
    await lastValueFrom(smtp.connect$());
    const stalled = lastValueFrom(smtp.noop$()).catch((e: unknown) => e);
    await fake.until(() => fake!.session.commands.length === 1);
    await smtp[Symbol.asyncDispose]();
    await fake.closedSession();
    expect(fake.session.commands).toEqual(['NOOP']);
    expect(await stalled).toMatchObject({ code: 'ERR_SMTP_SERVER_DISCONNECTED' });
  });

  it('never throws: before connect$, and after the server went away', async () => {
    await expect(new SMTP()[Symbol.asyncDispose]()).resolves.toBeUndefined();
    fake = await FakeServer.start({ handlers: { NOOP: { close: true } } });
    const smtp = new SMTP({ host: '127.0.0.1', port: fake.port, localHostname: 'c.test' });
    await lastValueFrom(smtp.connect$());
    await expect(lastValueFrom(smtp.noop$())).rejects.toThrow();
    await expect(smtp[Symbol.asyncDispose]()).resolves.toBeUndefined();
  });
});
