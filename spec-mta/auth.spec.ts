/**
 * AUTH through Postfix, checked by Dovecot: every mechanism with a good and a
 * bad password, on the submission port (STARTTLS first) and over implicit TLS.
 */
import { expectNoOpenSockets, message, ofType, token } from './helpers/client';
import { OTHER, USER, env, passwordOf } from './helpers/env';
import { PostfixLog, delivered } from './helpers/observe';
import { plainPort, sendOnce } from './helpers/postfix';

const submission = (
  auth: { user: string; password: string; mechanisms?: string[] },
  starttls: 'required' | 'never' = 'required',
) => plainPort({ port: env.postfix.submission, starttls, auth });

const ip = (host: string) => host.replace(/\./g, '\\.');

describe('AUTH through Postfix and Dovecot', () => {
  afterEach(() => expectNoOpenSockets());

  for (const mechanism of env.dovecot.authMechanisms) {
    it(`${mechanism}: STARTTLS, then AUTH with a good password, and the message is delivered`, async () => {
      const log = PostfixLog.mark();
      const id = token(`auth-${mechanism}`);
      const config = submission({ user: USER, password: passwordOf(USER), mechanisms: [mechanism] });
      const { events, error } = await sendOnce(config, USER, [OTHER], message(id, OTHER));
      expect(error).toBeUndefined();
      expect(ofType(events, 'sent')).toHaveLength(1);
      await log.waitFor(
        new RegExp(
          `client=\\S+\\[${ip(config.sourceAddress.host)}\\], sasl_method=${mechanism}, sasl_username=${USER}$`,
        ),
      );
      expect(await log.sessionEnd(config.sourceAddress.host)).toMatchObject({ starttls: '1', auth: '1', mail: '1' });
      await delivered(OTHER, id);
    });

    it(`${mechanism}: a bad password fails with ERR_SMTP_AUTHENTICATION (535) and sends no MAIL`, async () => {
      const log = PostfixLog.mark();
      const config = submission({ user: USER, password: 'wrong-password', mechanisms: [mechanism] });
      const { events, error } = await sendOnce(config, USER, [OTHER], message(token('bad-auth'), OTHER));
      expect(error).toMatchObject({ code: 'ERR_SMTP_AUTHENTICATION', smtpCode: 535 });
      expect(events).toEqual([]);
      const counts = await log.sessionEnd(config.sourceAddress.host);
      expect(counts.auth).toBe('0/1');
      expect(counts.mail).toBeUndefined();
    });
  }

  it('logs in with a password holding spaces and symbols, picking the strongest mechanism offered', async () => {
    const log = PostfixLog.mark();
    const id = token('auth-symbols');
    const config = submission({ user: OTHER, password: passwordOf(OTHER) });
    const { error } = await sendOnce(config, OTHER, [USER], message(id, USER));
    expect(error).toBeUndefined();
    await log.waitFor(
      new RegExp(
        `client=\\S+\\[${ip(config.sourceAddress.host)}\\], sasl_method=SCRAM-SHA-256, sasl_username=${OTHER}$`,
      ),
    );
    await delivered(USER, id);
  });

  it('never sends credentials before STARTTLS on the submission port', async () => {
    const log = PostfixLog.mark();
    const config = submission({ user: USER, password: passwordOf(USER) }, 'never');
    const { events, error } = await sendOnce(config, USER, [OTHER], message(token('no-tls'), OTHER));
    expect(error?.code).toBe('ERR_SMTP_INSECURE_AUTH');
    expect(events).toEqual([]);
    const counts = await log.sessionEnd(config.sourceAddress.host);
    expect(counts.auth).toBeUndefined();
    expect(counts.starttls).toBeUndefined();
  });

  it('authenticates over implicit TLS and delivers', async () => {
    const log = PostfixLog.mark();
    const id = token('auth-smtps');
    const config = plainPort({
      port: env.postfix.implicitTls,
      secure: true,
      auth: { user: USER, password: passwordOf(USER) },
    });
    const { error } = await sendOnce(config, USER, [OTHER], message(id, OTHER));
    expect(error).toBeUndefined();
    await log.waitFor(
      new RegExp(`client=\\S+\\[${ip(config.sourceAddress.host)}\\], sasl_method=\\S+, sasl_username=${USER}$`),
    );
    await delivered(OTHER, id);
  });
});
