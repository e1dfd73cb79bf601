import {
  EMPTY,
  Observable,
  OperatorFunction,
  catchError,
  concat,
  concatMap,
  defer,
  filter,
  finalize,
  identity,
  ignoreElements,
  map,
  ReplaySubject,
  toArray,
  merge,
  of,
  tap,
  throwError,
} from 'rxjs';
import {
  SMTPDataError,
  SMTPPossiblyDeliveredError,
  SMTPRecipientsRefused,
  SMTPResponseException,
  SMTPSenderRefused,
} from '../errors';
import { Outgoing } from '../transport/connection';
import { Lock } from '../transport/mutex';
import { BodyEncoder, encodeBody } from '../wire/body-encoder';
import { Body, has8bit, knownSize } from '../wire/body-source';
import { Command, command } from '../wire/command';
import { Reply } from '../wire/reply';
import { DOT_LINE, bodyChunks$, endOfData, writeDataBody$ } from './body';
import { ehlo$ } from './ehlo';
import { Envelope, MailOptions, RcptOptions, Recipient, planEnvelope } from './envelope';
import { Session, Timeouts, hasExtension } from './session';

/** One event of a transaction, in wire order (see design.md). */
export type SendEvent =
  | { readonly type: 'recipient'; readonly recipient: string; readonly accepted: boolean; readonly reply: Reply }
  | { readonly type: 'progress'; readonly bytesSent: number }
  | { readonly type: 'delivery'; readonly recipient: string; readonly delivered: boolean; readonly reply: Reply }
  | { readonly type: 'sent'; readonly reply: Reply; readonly refused: Readonly<Record<string, Reply>> };

/** A `progress` event each time this many more body bytes are written, and one at the end. */
const PROGRESS_STEP = 256 * 1024;
const DATA = command('DATA');
const RSET = command('RSET');
/** The end of a DATA that carried nothing (RFC 2920 §3.1), as a fire-and-forget line. */
const LONE_DOT: Command = { verb: '.', line: '.', debugText: '.' };
const NO_BYTES = new Uint8Array(0);

/**
 * Sends one message: smtplib's `sendmail` algorithm, streamed. Emits a
 * `recipient` event per RCPT reply as it arrives, `progress` while the body is
 * written, `delivery` per accepted recipient for LMTP, then `sent`.
 *
 * ```
 * sendmail$(s, …):  --r--r--p--p--(sent|)          SMTP
 *                   --r--r--p--d--d--(sent|)       LMTP
 * ```
 *
 * With PIPELINING, MAIL, every RCPT and DATA leave in one write (RFC 2920);
 * with CHUNKING too, the envelope and the body's BDAT chunks leave without
 * waiting (RFC 3030), so a transaction costs one round trip. Transactions on one
 * connection stack: the next writes as soon as this one wrote its last byte.
 *
 * Errors follow smtplib: `SMTPSenderRefused`, `SMTPRecipientsRefused` (all
 * refused, or none given), `SMTPDataError`; a 421 closes the connection, other
 * failures send RSET and leave it usable. A connection lost after the last byte
 * and before its reply is `SMTPPossiblyDeliveredError`: never retry that blindly.
 * Unsubscribing before the body sends RSET; during the body it destroys the connection.
 *
 * @param session a connected session (EHLO is sent first if it was not).
 * @param sender the reverse path; `''` for the null sender `<>`.
 * @param recipients addresses, or recipients with DSN options of their own.
 * @param body string, bytes, Readable, AsyncIterable or Observable of bytes.
 * @return the events of the transaction.
 */
export function sendmail$(
  session: Session,
  sender: string,
  recipients: string | readonly (string | Recipient)[],
  body: Body,
  mailOptions: MailOptions = {},
  rcptOptions: RcptOptions = {},
): Observable<SendEvent> {
  const list = typeof recipients === 'string' ? [recipients] : recipients;
  return ehlo$(session).pipe(
    concatMap(({ session: greeted }) => {
      if (list.length === 0) throw new SMTPRecipientsRefused({});
      const facts = { size: knownSize(body), has8bit: has8bit(body) };
      const envelope = planEnvelope(greeted, sender, list, facts, mailOptions, rcptOptions);
      return greeted.connection.writeLock.run$((lock) => new Transaction(greeted, envelope, body, lock).run$());
    }),
  );
}

type Phase = 'envelope' | 'body' | 'final' | 'done';
const notNull = <T>(value: T | null): value is T => value !== null;

/** One transaction while it runs; `run$` is its only entry point. */
class Transaction {
  private readonly refused: Record<string, Reply> = {};
  private readonly accepted: string[] = [];
  private mailReply?: Reply;
  private dataReply?: Reply;
  private phase: Phase = 'envelope';
  /** DATA or BDAT was written: the server may be reading a body, so RSET is no longer possible. */
  private bodyStarted = false;
  /** A 421 was seen: the server is leaving, so no RSET either (smtplib closes). */
  private closing = false;
  /** RCPT replies read so far, and whether one of them was 421 (smtplib stops there). */
  private rcptReplies = 0;
  private rcptClosing = false;
  /** The write lock went to the next transaction. */
  private released = false;
  /** The replies of a pipelined MAIL..DATA group, read to the end whatever the caller does. */
  private groupReplies?: Observable<Reply>;
  private readonly pipelining: boolean;

  constructor(
    private readonly session: Session,
    private readonly envelope: Envelope,
    private readonly body: Body,
    private readonly lock: Lock,
  ) {
    this.pipelining = hasExtension(session, 'pipelining');
  }

  run$(): Observable<SendEvent> {
    const { connection, lmtp } = this.session;
    // LMTP needs the number of accepted recipients before the end of data: it waits for the envelope.
    const stacked = this.pipelining && this.envelope.mode === 'bdat' && !lmtp;
    // Corked: a small body, its final dot and the next transaction's envelope (written as soon as
    // the lock passes) leave in one segment.
    const transaction$ = stacked
      ? connection.corked$(merge(this.envelope$(), defer(() => this.body$())))
      : concat(this.envelope$(), defer(() => connection.corked$(this.body$())));
    return transaction$.pipe(
      catchError((err: unknown) => this.recover$(err)),
      finalize(() => this.abandon()),
    );
  }

  // ---- the envelope: MAIL, RCPT…, and DATA when not chunking ----

  private envelope$(): Observable<SendEvent> {
    const { mail, recipients, mode } = this.envelope;
    const withData = mode === 'data';
    if (this.pipelining) {
      // RFC 2920 §3.1: one group, MAIL to DATA; every reply is read before the verdict.
      const group = [mail, ...recipients.map((r) => r.rcpt), ...(withData ? [DATA] : [])];
      // Read to the end even if the caller leaves early: abandon() must know how DATA was answered.
      const replies = new ReplaySubject<Reply>();
      this.groupReplies = replies;
      const events$ = defer(() => {
        this.request$(group, 'rcpt').subscribe(replies);
        return replies;
      }).pipe(
        map((reply, i) => this.record(i, reply)),
        // After a 421 the server closes without answering the rest of the group: the 421 is the verdict.
        catchError((err: unknown) => (this.closing ? EMPTY : throwError(() => err))),
      );
      // Chunked and stacked, the verdict waits for the last reply (see final$).
      return concat(events$, defer(() => (withData ? this.verdict$() : EMPTY))).pipe(filter(notNull));
    }
    // Lockstep (RFC 5321 §4.1.1): each command waits for the previous reply.
    const mail$ = this.request$(mail, 'mail').pipe(
      map((reply) => this.record(0, reply)),
      concatMap((event) => (this.mailReply?.code === 250 ? of(event) : this.verdict$())),
    );
    const rcpts$ = recipients.map((r, i) =>
      defer(() => (this.rcptClosing ? EMPTY : this.request$(r.rcpt, 'rcpt').pipe(map((reply) => this.record(i + 1, reply))))),
    );
    const data$ = defer(() => {
      if (this.rcptClosing || this.accepted.length === 0 || !withData) return this.verdict$();
      this.bodyStarted = true;
      return this.request$(DATA, 'data').pipe(
        map((reply) => this.record(recipients.length + 1, reply)),
        concatMap(() => this.verdict$()),
      );
    });
    return concat(mail$, ...rcpts$, data$).pipe(filter(notNull));
  }

  /** Records the reply to envelope command `i` (0 MAIL, then each RCPT, then DATA). */
  private record(i: number, reply: Reply): SendEvent | null {
    const { recipients } = this.envelope;
    if (reply.code === 421) this.closing = true;
    if (i === 0) this.mailReply = reply;
    else if (i <= recipients.length) {
      this.rcptReplies += 1;
      if (reply.code === 421) this.rcptClosing = true;
      // Pipelined after a refused MAIL, RCPT replies say only "need MAIL": not the recipients' fate.
      if (this.mailReply && this.mailReply.code !== 250) return null;
      const recipient = recipients[i - 1].address;
      const accepted = isAccepted(reply);
      if (accepted) this.accepted.push(recipient);
      else this.refused[recipient] = reply;
      return { type: 'recipient', recipient, accepted, reply };
    } else {
      this.dataReply = reply;
      if (reply.code === 354) this.bodyStarted = true;
    }
    return null;
  }

  /** Errors with the envelope's failure, if any; a DATA that got 354 regardless is ended first. */
  private verdict$(): Observable<never> {
    const failure = this.envelopeFailure();
    if (!failure) return EMPTY;
    // RFC 2920 §3.1: DATA got 354 although no recipient was accepted: end it with a lone dot.
    const end$ = this.dataReply?.code === 354 ? this.request$(endOfData(0), 'dataEnd') : EMPTY;
    return concat(end$.pipe(ignoreElements()), throwError(() => failure));
  }

  private envelopeFailure(): Error | undefined {
    const reply = this.mailReply;
    if (reply && reply.code !== 250) {
      return new SMTPSenderRefused(reply.code, reply.message, this.envelope.sender, {
        reply,
        command: this.envelope.mail.debugText,
      });
    }
    const allAnswered = this.rcptReplies === this.envelope.recipients.length;
    if (this.rcptClosing || (allAnswered && this.accepted.length === 0)) {
      return new SMTPRecipientsRefused({ ...this.refused });
    }
    if (this.dataReply && this.dataReply.code !== 354) return SMTPDataError.fromReply(this.dataReply, 'DATA');
    return undefined;
  }

  // ---- the body ----

  private body$(): Observable<SendEvent> {
    this.phase = 'body';
    this.bodyStarted = true;
    return this.envelope.mode === 'data' ? this.dataBody$() : this.bdatBody$();
  }

  /** DATA: the dot-stuffed body (RFC 5321 §4.5.2), then the final dot. */
  private dataBody$(): Observable<SendEvent> {
    const small = smallBody(this.body);
    if (small) {
      // The common case, a message in memory: encoded at once, it leaves in the same write as its dot.
      const encoder = new BodyEncoder({ dotStuff: true, terminate: false, finalCrlf: true });
      const end = endOfData(this.expectedFinalReplies(), encoder.push(small), encoder.end());
      return concat(of(progressOf(end.bytes.length - DOT_LINE.length)), defer(() => this.final$([end], [])));
    }
    const sizes$ = writeDataBody$(this.session, this.body);
    return concat(progress$(sizes$), defer(() => this.final$([endOfData(this.expectedFinalReplies())], [])));
  }

  /**
   * BDAT (RFC 3030): each chunk as `BDAT n`, the last held back to go as
   * `BDAT n LAST`. With PIPELINING the chunks do not wait for their replies
   * (RFC 3030 §4.2); every reply is checked once the last one arrives.
   */
  private bdatBody$(): Observable<SendEvent> {
    const small = smallBody(this.body);
    if (small) {
      const encoded = this.envelope.binary ? small : new BodyEncoder({ dotStuff: false, terminate: false }).push(small);
      const last = bdat(encoded, true, this.expectedFinalReplies());
      return concat(of(progressOf(encoded.length)), defer(() => this.final$(last, [])));
    }
    const chunkReplies: Reply[] = [];
    let lastChunk: Uint8Array = NO_BYTES;
    // BODY=BINARYMIME: the bytes go out untouched; otherwise line ends are canonicalised, no dot-stuffing.
    const encode = this.envelope.binary ? identity : encodeBody({ dotStuff: false, terminate: false });
    const sizes$ = bodyChunks$(this.session, this.body, encode).pipe(
      withLast(),
      concatMap(({ value, last }) => {
        if (last) {
          lastChunk = value;
          return of(value.length);
        }
        return this.bdatChunk$(value, chunkReplies);
      }),
    );
    const last$ = defer(() => this.final$(bdat(lastChunk, true, this.expectedFinalReplies()), chunkReplies));
    return concat(progress$(sizes$), last$);
  }

  private bdatChunk$(chunk: Uint8Array, replies: Reply[]): Observable<number> {
    const reply$ = this.request$(bdat(chunk, false, 1), 'dataBlock');
    if (this.pipelining) {
      // Read in the background; a dead connection fails the final reply anyway.
      reply$.subscribe({ next: (reply) => replies.push(reply), error: () => undefined });
      return of(chunk.length);
    }
    return reply$.pipe(
      map((reply) => {
        if (reply.code !== 250) throw SMTPDataError.fromReply(reply, 'BDAT');
        return chunk.length;
      }),
    );
  }

  /**
   * Writes the last bytes, hands the write lock to the next transaction, and
   * turns the final replies into events: `delivery` per recipient for LMTP
   * (RFC 2033 §4.2), then `sent`. Losing the connection now is "possibly delivered".
   */
  private final$(group: readonly Outgoing[], chunkReplies: readonly Reply[]): Observable<SendEvent> {
    const { connection } = this.session;
    const replies$ = this.request$(group, 'dataEnd');
    const written$ = new Observable<Reply>((subscriber) => {
      // A connection already gone takes nothing: the message was certainly not delivered.
      if (connection.open) this.phase = 'final';
      const subscription = replies$.subscribe(subscriber);
      this.released = true;
      this.lock.release();
      return subscription;
    });
    const finals: Reply[] = [];
    const events$ = written$.pipe(
      catchError((err: unknown) => throwError(() => this.afterLastByte(err))),
      map((reply) => {
        finals.push(reply);
        return this.session.lmtp ? this.delivery(finals.length - 1, reply) : null;
      }),
      filter(notNull),
    );
    return concat(events$, defer(() => of(this.conclusion(finals, chunkReplies))));
  }

  private delivery(i: number, reply: Reply): SendEvent {
    const recipient = this.accepted[i];
    const delivered = reply.code === 250;
    if (!delivered) this.refused[recipient] = reply;
    return { type: 'delivery', recipient, delivered, reply };
  }

  /** The `sent` event, or the error the final replies amount to. */
  private conclusion(finals: readonly Reply[], chunkReplies: readonly Reply[]): SendEvent {
    const envelopeFailure = this.envelopeFailure();
    if (envelopeFailure) throw envelopeFailure;
    const last = finals[finals.length - 1];
    // SMTP: the one final reply decides; LMTP: only when every recipient's delivery failed.
    const failed = this.session.lmtp ? finals.every((r) => r.code !== 250) : last.code !== 250;
    const failure = chunkReplies.find((r) => r.code !== 250) ?? (failed ? last : undefined);
    if (failure) {
      if (failure.code === 421) this.closing = true;
      throw SMTPDataError.fromReply(failure, this.envelope.mode === 'data' ? '.' : 'BDAT LAST');
    }
    return { type: 'sent', reply: last, refused: { ...this.refused } };
  }

  // ---- helpers ----

  /** One reply for SMTP; one per accepted recipient for LMTP (RFC 2033 §4.2). */
  private expectedFinalReplies(): number {
    return this.session.lmtp ? this.accepted.length : 1;
  }

  private request$(out: Outgoing | readonly Outgoing[], step: keyof Timeouts): Observable<Reply> {
    return this.session.connection.request$(out, { step, timeout: this.session.timeouts[step] });
  }

  /**
   * What a failure means once the last byte may have been written: a refused envelope (stacked
   * BDAT) means the body was never taken; otherwise the server may have accepted the message.
   */
  private afterLastByte(err: unknown): unknown {
    if (this.phase !== 'final' || err instanceof SMTPPossiblyDeliveredError) return err;
    return this.envelopeFailure() ?? possiblyDelivered(err);
  }

  /** smtplib's recovery: a 421 closes the connection; other refusals send RSET and keep it. */
  private recover$(failure: unknown): Observable<never> {
    // Stacked BDAT: the envelope's request may fail first, after the whole message was written.
    const err = isRefusal(failure) ? failure : this.afterLastByte(failure);
    this.phase = 'done';
    const { connection, timeouts } = this.session;
    const failed$ = throwError(() => err);
    if (!isRefusal(err) || !connection.open) return failed$;
    if (this.closing) {
      connection.destroy(err);
      return failed$;
    }
    const rset$ = connection.request$(RSET, { step: 'rset', timeout: timeouts.command }).pipe(
      // A server that will not reset leaves the connection in an unknown state: never reuse it.
      tap((reply) => {
        if (reply.code !== 250) connection.destroy(SMTPResponseException.fromReply(reply, 'RSET'));
      }),
    );
    // After the final reply the lock may be with the next transaction: queue behind it.
    const queued$ = this.released ? connection.writeLock.run$(() => rset$) : rset$;
    return concat(queued$.pipe(ignoreElements(), catchError(() => EMPTY)), failed$);
  }

  /** Runs however the transaction ends; after an early unsubscribe it cleans up. */
  private abandon(): void {
    const phase = this.phase;
    this.phase = 'done';
    const { connection } = this.session;
    if (phase === 'done' || phase === 'final' || !connection.open) return;
    if (phase === 'envelope' && this.groupReplies && this.envelope.mode === 'data' && !this.dataReply) {
      this.abandonPipelinedGroup(this.groupReplies);
      return;
    }
    if (this.bodyStarted) {
      // The server is reading a body that will never end: the connection cannot be saved.
      connection.destroy();
    } else {
      // RFC 5321 §4.1.1.5: RSET aborts the transaction and keeps the connection.
      connection.commands.next(RSET);
    }
  }
  /**
   * Left while MAIL..DATA are out unanswered (PIPELINING): the server may be about to read a
   * body, so nothing else may be written yet. Keep the write lock, read the group's replies (the
   * transactions stacked before this one get their final replies meanwhile), then: DATA refused,
   * RSET; DATA accepted with no recipient, a lone dot (RFC 2920 §3.1) and RSET; DATA accepted
   * for some recipient, close, since a dot would deliver an empty message.
   */
  private abandonPipelinedGroup(replies$: Observable<Reply>): void {
    const { connection } = this.session;
    this.lock.keep();
    replies$.pipe(toArray()).subscribe({
      next: (replies) => {
        const data = replies[replies.length - 1];
        const anyAccepted = replies.slice(1, -1).some(isAccepted);
        if (data.code === 354 && anyAccepted) return connection.destroy();
        if (data.code === 354) connection.commands.next(LONE_DOT);
        connection.commands.next(RSET);
      },
      error: () => this.lock.release(),
      complete: () => this.lock.release(),
    });
  }

}

/** smtplib: 250 and 251 accept a recipient; anything else refuses it. */
function isAccepted(reply: Reply): boolean {
  return reply.code === 250 || reply.code === 251;
}

/** `BDAT n [LAST]` and its bytes; the command draws one reply, LMTP's LAST one per recipient. */
function bdat(chunk: Uint8Array, last: boolean, replies: number): Outgoing[] {
  const cmd: Command = command('BDAT', [String(chunk.length), ...(last ? ['LAST'] : [])]);
  return [cmd, { bytes: chunk, replies: Math.max(replies, 1) - 1, debugText: `<${chunk.length} bytes>` }];
}

/** In-memory bodies up to this size skip the streaming machinery: encoded at once, written with their end. */
const SMALL_BODY = 64 * 1024;

/** The body's bytes when it is in memory and small, else undefined (it will be streamed). */
function smallBody(body: Body): Uint8Array | undefined {
  const size = knownSize(body);
  if (size === undefined || size > SMALL_BODY) return undefined;
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : (body as Uint8Array);
}

function progressOf(bytesSent: number): SendEvent {
  return { type: 'progress', bytesSent };
}

/** A reply-based failure: the server said no, so the connection's state is known. */
function isRefusal(err: unknown): boolean {
  return err instanceof SMTPResponseException || err instanceof SMTPRecipientsRefused;
}

function possiblyDelivered(cause: unknown): SMTPPossiblyDeliveredError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new SMTPPossiblyDeliveredError(
    `The connection failed after the message was written and before the server confirmed it (${reason}); ` +
      'it may have been delivered: do not resend it blindly',
    { cause },
  );
}

/** Turns written chunk sizes into `progress` events: one per PROGRESS_STEP bytes, and the total at the end. */
function progress$(sizes$: Observable<number>): Observable<SendEvent> {
  return new Observable<SendEvent>((subscriber) => {
    let total = 0;
    let reported = -1;
    return sizes$.subscribe({
      next: (n) => {
        total += n;
        if (total - Math.max(reported, 0) >= PROGRESS_STEP) {
          reported = total;
          subscriber.next({ type: 'progress', bytesSent: total });
        }
      },
      error: (err: unknown) => subscriber.error(err),
      complete: () => {
        if (reported !== total) subscriber.next({ type: 'progress', bytesSent: total });
        subscriber.complete();
      },
    });
  });
}

/** Pairs each value with whether it is the last, holding one value back. */
function withLast<T>(): OperatorFunction<T, { value: T; last: boolean }> {
  return (source$) =>
    new Observable((subscriber) => {
      let held: { value: T } | undefined;
      return source$.subscribe({
        next: (value) => {
          if (held) subscriber.next({ value: held.value, last: false });
          held = { value };
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          subscriber.next({ value: held ? held.value : (NO_BYTES as T), last: true });
          subscriber.complete();
        },
      });
    });
}
