import { lastValueFrom, toArray } from 'rxjs';
import { PoolMessage } from '../../lib/pool/outcome';
import { sendAll$ } from '../../lib/pool/send-all';
import { Handler } from '../helpers/fake-server';
import { BODY, Bench } from './setup';

const retry = { attempts: 3, backoffMs: 1 };
const retryRecipients = true;

/** RCPT lines the fake received, in order, e.g. 'RCPT TO:<b@x.test>'. */
const rcpts = (sessions: readonly { commands: string[] }[]) =>
  sessions.flatMap((s) => s.commands).filter((c) => c.startsWith('RCPT'));

/** Refuses `address` with a 450 the first `times` times it is named, then takes it. */
function busyFor(address: string, times: number): Handler {
  let left = times;
  return (line) => (line.includes(`<${address}>`) && left-- > 0 ? '450 4.2.1 Mailbox busy' : '250 2.1.5 Ok');
}

describe('SMTPPool per-recipient retry', () => {
  const bench = new Bench();
  afterEach(() => bench.tearDown());

  it('sends a follow-up to only the recipients refused with a 4xx, and reports them taken', async () => {
    const fake = await bench.fake({ handlers: { RCPT: busyFor('b@x.test', 1) } });
    const pool = bench.pool(fake.port, { retry, retryRecipients });

    const outcome = await lastValueFrom(pool.send$({ from: 'a@x.test', to: ['b@x.test', 'c@x.test'], body: BODY }));

    expect(outcome).toMatchObject({ status: 'sent', refused: {}, deferred: {}, attempts: 1 });
    // The follow-up names only the recipient that was refused: c@ already has the message.
    expect(rcpts(fake.sessions)).toEqual(['RCPT TO:<b@x.test>', 'RCPT TO:<c@x.test>', 'RCPT TO:<b@x.test>']);
    expect(fake.sessions.flatMap((s) => s.messages).map(String)).toEqual([BODY, BODY]);
    await pool.close();
  });

  it('keeps a 5xx refusal as it was, and ends a recipient still refused with a 4xx after `attempts` tries as deferred', async () => {
    const fake = await bench.fake({
      handlers: {
        RCPT: (l) =>
          l.includes('<b@') ? '450 4.2.1 Mailbox busy' : l.includes('<d@') ? '550 5.1.1 No such user' : '250 2.1.5 Ok',
      },
    });
    const pool = bench.pool(fake.port, { retry, retryRecipients });

    const outcome = await lastValueFrom(
      pool.send$({ from: 'a@x.test', to: ['b@x.test', 'c@x.test', 'd@x.test'], body: BODY }),
    );

    expect(outcome).toMatchObject({
      status: 'sent',
      refused: { 'b@x.test': { code: 450 }, 'd@x.test': { code: 550 } },
      deferred: { 'b@x.test': { code: 450 } },
    });
    expect(outcome.status === 'sent' && Object.keys(outcome.deferred)).toEqual(['b@x.test']);
    // Three tries in all for b@ (the policy's attempts), one for the others.
    expect(rcpts(fake.sessions).filter((c) => c.includes('<b@'))).toHaveLength(3);
    expect(rcpts(fake.sessions).filter((c) => !c.includes('<b@'))).toHaveLength(2);
    await pool.close();
  });

  it('never sends a follow-up again once one was lost after its body: its recipient stays refused, not deferred', async () => {
    let dots = 0;
    // The follow-up to b@ is taken at RCPT, and the connection is lost after its body.
    const fake = await bench.fake({
      handlers: { RCPT: busyFor('b@x.test', 1), '.': () => (++dots === 1 ? '250 2.0.0 Ok' : { close: true }) },
    });
    const pool = bench.pool(fake.port, { retry, retryRecipients });

    const outcome = await lastValueFrom(pool.send$({ from: 'a@x.test', to: ['b@x.test', 'c@x.test'], body: BODY }));

    expect(outcome).toMatchObject({ status: 'sent', refused: { 'b@x.test': { code: 450 } }, deferred: {} });
    expect(dots).toBe(2);
    await pool.close();
  });

  it('delivers every message of a run with 5 % transient recipient refusals', async () => {
    const MESSAGES = 1_000;
    // The first recipient of every 20th message is refused once with a 450; its follow-up is taken.
    // (Counting RCPTs across connections instead let a follow-up land on a refused slot again.)
    const refusedOnce = new Set<string>();
    const fake = await bench.fake({
      handlers: {
        RCPT: (line) => {
          const address = /<(r(\d+)@x\.test)>/.exec(line);
          if (!address?.[1] || Number(address[2]) % 20 !== 0 || refusedOnce.has(address[1])) return '250 2.1.5 Ok';
          refusedOnce.add(address[1]);
          return '450 4.2.1 Mailbox busy';
        },
      },
    });
    const pool = bench.pool(fake.port, { maxConnections: 4, retry, retryRecipients });
    const messages = Array.from({ length: MESSAGES }, (_, id): PoolMessage<number> => ({
      from: 'a@x.test',
      to: [`r${id}@x.test`, `s${id}@x.test`],
      body: BODY,
      id,
    }));

    const outcomes = await lastValueFrom(sendAll$(pool, messages).pipe(toArray()));

    // Each refusal is a partial one (the other recipient took it): a follow-up for one recipient.
    expect(outcomes.filter((o) => o.status === 'sent' && Object.keys(o.refused).length === 0)).toHaveLength(MESSAGES);
    expect(pool.stats).toMatchObject({ sent: MESSAGES, failed: 0 });
    expect(refusedOnce.size).toBe(MESSAGES / 20);
    expect(fake.sessions.flatMap((s) => s.messages)).toHaveLength(MESSAGES + MESSAGES / 20);
    await pool.close();
  }, 60_000);
});
