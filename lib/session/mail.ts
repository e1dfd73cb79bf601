import { Observable, concat, concatMap, defer, finalize, ignoreElements, last, map } from 'rxjs';
import { SMTPDataError, SMTPNotSupportedError } from '../errors';
import { mailboxForWire, reversePathForWire } from '../message/mailbox';
import { lastRequest$ } from '../transport/connection';
import { Body } from '../wire/body-source';
import { Command, command } from '../wire/command';
import { Reply } from '../wire/reply';
import { endOfData, writeDataBody$ } from './body';
import { Session, Step, Timeouts, hasExtension } from './session';

/**
 * smtplib's `mail()`: `MAIL FROM:<sender>` with the options when the server
 * speaks ESMTP (dropped otherwise, as smtplib does). `SMTPUTF8` among the
 * options without server support is `SMTPNotSupportedError`. The reply is
 * emitted whatever its code.
 */
export function mail$(session: Session, sender: string, options: readonly string[] = []): Observable<Step> {
  return defer(() => {
    const utf8 = smtputf8(session, options);
    const path = reversePathForWire(sender, { smtputf8: utf8 });
    return send$(session, command('MAIL', [`FROM:${path.wire}`, ...esmtpOptions(session, options)]), 'mail');
  });
}

/** smtplib's `rcpt()`: `RCPT TO:<recipient>` with the options when the server speaks ESMTP. */
export function rcpt$(session: Session, recipient: string, options: readonly string[] = []): Observable<Step> {
  return defer(() => {
    const path = mailboxForWire(recipient, { smtputf8: hasExtension(session, 'smtputf8') });
    return send$(session, command('RCPT', [`TO:${path.wire}`, ...esmtpOptions(session, options)]), 'rcpt');
  });
}

/**
 * smtplib's `data()`: DATA, and on 354 the body (line ends canonicalised,
 * dots doubled, final dot added); any other reply to DATA is `SMTPDataError`.
 * Emits the reply to the final dot; for LMTP pass `replies` (one per accepted
 * recipient, RFC 2033 §4.2) and the last one is emitted.
 */
export function data$(session: Session, body: Body, replies = 1): Observable<Step> {
  const { connection, timeouts } = session;
  // One turn from DATA to the final dot: nothing else may be written inside the message.
  return connection.withTurn$((turn) => {
    // From DATA on until the final dot is written, the server may be reading a message (a 354 may be
    // on its way): whoever wrote next would write inside it.
    // (A connection that takes no more writes refuses DATA itself: nothing is under way to abandon.)
    let unfinished = connection.writable;
    return turn.request$(command('DATA'), { step: 'data', timeout: timeouts.data }).pipe(
      concatMap((reply) => {
        if (reply.code !== 354) {
          unfinished = false;
          throw SMTPDataError.fromReply(reply, 'DATA');
        }
        const end$ = defer(() => {
          unfinished = false;
          return lastRequest$(turn, endOfData(replies), { step: 'dataEnd', timeout: timeouts.dataEnd });
        });
        return concat(writeDataBody$(session, turn, body).pipe(ignoreElements()), end$).pipe(last());
      }),
      map((reply: Reply) => ({ session, reply })),
      // Left (or failed) before DATA was answered or mid-body: the server is, or may be about to be,
      // reading a message that will never end.
      finalize(() => unfinished && connection.destroy()),
    );
  });
}

function send$(session: Session, cmd: Command, step: keyof Timeouts): Observable<Step> {
  return session.connection
    .request$(cmd, { step, timeout: session.timeouts[step] })
    .pipe(map((reply) => ({ session, reply })));
}

/** smtplib sends options to ESMTP servers only. */
function esmtpOptions(session: Session, options: readonly string[]): readonly string[] {
  return session.doesEsmtp ? options : [];
}

function smtputf8(session: Session, options: readonly string[]): boolean {
  const asked = session.doesEsmtp && options.some((o) => o.toUpperCase() === 'SMTPUTF8');
  if (asked && !hasExtension(session, 'smtputf8')) throw new SMTPNotSupportedError('SMTPUTF8 not supported by server');
  return hasExtension(session, 'smtputf8');
}
