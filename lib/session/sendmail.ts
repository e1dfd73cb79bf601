import { Observable, Subscriber, Subscription, concatMap, defer, identity, of, throwError, timeout } from 'rxjs';
import {
  SMTPDataError,
  SMTPPossiblyDeliveredError,
  SMTPProtocolError,
  SMTPRecipientsRefused,
  SMTPResponseException,
  SMTPServerDisconnected,
  SMTPTimeoutError,
  hasCode,
  isServerRefusal,
} from '../errors';
import { Outgoing, ReplyHandler, Turn } from '../transport/connection';
import { BodyEncoder, encodeBody } from '../wire/body-encoder';
import { Body, bodyFacts } from '../wire/body-source';
import { Command, command } from '../wire/command';
import { Reply } from '../wire/reply';
import {
  DOT_LINE,
  NO_BYTES,
  bdat,
  bodyChunks$,
  endOfData,
  progress$,
  progressOf,
  smallBody,
  withLast,
  writeDataBody$,
} from './body';
import { ehlo$, isGreeted } from './ehlo';
import { Envelope, MailOptions, RcptOptions, Recipient, planEnvelope } from './envelope';
import { Session, Timeouts, hasExtension } from './session';
import { envelopeVerdict, isAccepted, transactionVerdict } from './verdict';

/** One event of a transaction, in wire order (see ARCHITECTURE.md). */
export type SendEvent =
  | { readonly type: 'recipient'; readonly recipient: string; readonly accepted: boolean; readonly reply: Reply }
  | { readonly type: 'progress'; readonly bytesSent: number }
  | { readonly type: 'delivery'; readonly recipient: string; readonly delivered: boolean; readonly reply: Reply }
  | { readonly type: 'sent'; readonly reply: Reply; readonly refused: Readonly<Record<string, Reply>> };

/** What a caller may run at fixed points of one transaction. */
export interface SendHooks {
  /**
   * Runs once the server took the envelope and the body began (DATA's 354, or the first BDAT),
   * right before the end of the message (DATA's final dot, BDAT LAST) is written; the end waits
   * for it, under the data-block timeout. The last moment the message is certainly not delivered:
   * a durable queue records "the end may have gone" here (rx-smtp/queue). If it rejects, or its
   * time runs out (`SMTPTimeoutError` with step `beforeEnd`), the transaction fails with that
   * error, the end unwritten, and the connection is closed (a body cannot be taken back).
   * With it, a pipelined BDAT transaction waits for its envelope's replies instead of stacking.
   */
  readonly beforeEnd?: () => PromiseLike<void>;
}

const DATA = command('DATA');
const RSET = command('RSET');
/** The end of a DATA that carried nothing (RFC 2920 §3.1). */
const LONE_DOT: Command = { verb: '.', line: '.', debugText: '.' };
const noop = (): void => undefined;
/** The replies of cleanup commands: only their deadline matters (an unanswered one ends the connection). */
const IGNORE: ReplyHandler = { reply: noop, error: noop };

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
 * Unsubscribing before the body sends RSET (after the replies still owed, under the command
 * deadline); once the server may be reading a body (a 354 to a pipelined DATA for an accepted
 * recipient, the body under way, or the lone dot that ends a DATA no recipient got) it destroys
 * the connection, since no RSET can end a DATA.
 *
 * @param session a connected session (EHLO is sent first if it was not).
 * @param sender the reverse path; `''` for the null sender `<>`.
 * @param recipients addresses, or recipients with DSN options of their own.
 * @param body string, bytes, Readable, AsyncIterable or Observable of bytes.
 * @param hooks code to run at fixed points of the transaction (`beforeEnd`).
 * @return the events of the transaction.
 */
export function sendmail$(
  session: Session,
  sender: string,
  recipients: string | readonly (string | Recipient)[],
  body: Body,
  mailOptions: MailOptions = {},
  rcptOptions: RcptOptions = {},
  hooks: SendHooks = {},
): Observable<SendEvent> {
  const list = typeof recipients === 'string' ? [recipients] : recipients;
  return new Observable<SendEvent>((subscriber) => {
    let transaction: Transaction | undefined;
    let greeting: Subscription | undefined;
    // Registered before anything is written: a subscriber may leave during a synchronous event
    // (a stacked BDAT emits `progress` before its body is written), and must stop the rest.
    subscriber.add(() => {
      greeting?.unsubscribe();
      transaction?.abandon();
    });
    const begin = (greeted: Session): void => {
      try {
        if (list.length === 0) throw new SMTPRecipientsRefused({});
        const facts = bodyFacts(body);
        const envelope = planEnvelope(greeted, sender, list, facts, mailOptions, rcptOptions);
        transaction = new Transaction(greeted, envelope, body, subscriber, hooks);
      } catch (err) {
        subscriber.error(err);
        return;
      }
      if (!subscriber.closed) transaction.enqueue();
    };
    // smtplib's ehlo_or_helo_if_needed; a greeted session (the common case) goes straight on.
    if (isGreeted(session)) begin(session);
    else
      greeting = ehlo$(session).subscribe({
        next: (step) => begin(step.session),
        error: (err: unknown) => subscriber.error(err),
      });
  });
}

type Phase = 'queued' | 'envelope' | 'body' | 'final' | 'done';

/**
 * One transaction while it runs, as a state machine driven by the connection's
 * replies: no Observable per command, since a bulk sender runs thousands a second.
 * `enqueue` starts it, `abandon` is its teardown; it ends with exactly one of
 * `subscriber.error` or `subscriber.complete`.
 */
class Transaction {
  /** Every reply so far: the verdict is a function of these (verdict.ts). */
  private readonly replies: { mail?: Reply; rcpts: Reply[]; data?: Reply; chunks: Reply[]; finals: Reply[] } = {
    rcpts: [],
    chunks: [],
    finals: [],
  };
  /** The recipients accepted so far, in order: LMTP's final replies are theirs, one each. */
  private readonly accepted: string[] = [];
  private phase: Phase = 'queued';
  /** DATA or BDAT was written: the server may be reading a body, so RSET is no longer possible. */
  private bodyStarted = false;
  /** A 421 was seen: the server is leaving, so no RSET either (smtplib closes). */
  private closing = false;
  /** A RCPT was answered 421: smtplib stops there. */
  private rcptClosing = false;
  /**
   * The connection's write channel while this transaction holds it; whether it went to the next one; whether cleanup
   * keeps it.
   */
  private turn?: Turn;
  private released = false;
  private kept = false;
  private cancelWait: () => void = noop;
  /** The replies of a pipelined MAIL..DATA group, read to the end whatever the caller does. */
  private readonly groupReplies: Reply[] = [];
  private groupOver = false;
  /** Set by `abandonPipelinedGroup`: what to do once the group is over (`null`: it failed). */
  private afterGroup?: (replies: readonly Reply[] | null) => void;
  /** Stacked BDAT: the envelope's replies are all in, so the final replies may conclude. */
  private envelopeOver = false;
  private finalsExpected = 0;
  private bodySubscription?: Subscription;
  private beforeEndRan = false;
  private readonly pipelining: boolean;
  /** Pipelined BDAT, SMTP: the body follows the envelope without waiting (RFC 3030 §4.2). */
  private readonly stacked: boolean;

  constructor(
    private readonly session: Session,
    private readonly envelope: Envelope,
    private readonly body: Body,
    private readonly subscriber: Subscriber<SendEvent>,
    private readonly hooks: SendHooks,
  ) {
    this.pipelining = hasExtension(session, 'pipelining');
    // LMTP needs the number of accepted recipients before the end of data, and `beforeEnd` an
    // accepted envelope: both wait for the envelope's replies.
    this.stacked = this.pipelining && envelope.mode === 'bdat' && !session.lmtp && !hooks.beforeEnd;
  }

  /** Waits for the connection's write channel; transactions on one connection write one after another. */
  enqueue(): void {
    this.cancelWait = this.session.connection.turn((turn) => {
      this.turn = turn;
      this.start(turn);
    });
  }

  /** The write channel: every write comes after `enqueue` was granted it. */
  private get writer(): Turn {
    if (!this.turn) throw new SMTPProtocolError('a transaction wrote before it held the connection (an rx-smtp bug)');
    return this.turn;
  }

  private release(): void {
    this.turn?.release();
  }

  private start(turn: Turn): void {
    this.phase = 'envelope';
    if (!this.stacked) return this.pipelining ? this.sendGroup() : this.sendMail();
    // Corked: the envelope and a small body leave in one segment.
    turn.cork();
    this.sendGroup();
    // sendGroup() ends the transaction at once when the connection is already gone.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (this.phase === 'envelope') this.startBody();
  }

  // ---- the envelope: MAIL, RCPT…, and DATA when not chunking ----

  /** RFC 2920 §3.1: MAIL to DATA in one group; every reply is read before the verdict. */
  private sendGroup(): void {
    const { mail, recipients, mode } = this.envelope;
    const group = [mail, ...recipients.map((r) => r.rcpt), ...(mode === 'data' ? [DATA] : [])];
    // Read to the end even if the caller leaves early: abandon() must know how DATA was answered.
    this.request(group, 'rcpt', {
      reply: (reply) => {
        const i = this.groupReplies.push(reply) - 1;
        if (this.phase !== 'done') this.emit(this.record(i, reply));
        if (this.groupReplies.length === group.length) this.groupEnded(true);
      },
      error: (err) => {
        // After a 421 the server closes without answering the rest of the group: the 421 is the verdict.
        if (this.closing) this.groupEnded(true);
        else if (this.groupEnded(false)) this.fail(err);
      },
    });
  }

  /** @return whether the transaction still runs (nobody was waiting to clean up after the group). */
  private groupEnded(answered: boolean): boolean {
    if (this.groupOver) return false;
    this.groupOver = true;
    if (this.afterGroup) {
      this.afterGroup(answered ? this.groupReplies : null);
      return false;
    }
    if (!answered) return true;
    if (this.stacked) {
      this.envelopeOver = true;
      this.conclude();
    } else this.envelopeAnswered();
    return true;
  }

  /** Lockstep (RFC 5321 §4.1.1): each command waits for the previous reply. */
  private sendMail(): void {
    this.request(this.envelope.mail, 'mail', {
      reply: (reply) => {
        this.emit(this.record(0, reply));
        if (this.phase === 'done') return;
        if (reply.code === 250) this.sendRcpt(0);
        else this.envelopeAnswered();
      },
      error: (err) => this.fail(err),
    });
  }

  private sendRcpt(k: number): void {
    const recipient = this.envelope.recipients[k];
    // Past the last recipient, or the server is closing: on to DATA (which checks what was accepted).
    if (recipient === undefined || this.rcptClosing) return this.sendData();
    this.request(recipient.rcpt, 'rcpt', {
      reply: (reply) => {
        this.emit(this.record(k + 1, reply));
        if (this.phase !== 'done') this.sendRcpt(k + 1);
      },
      error: (err) => this.fail(err),
    });
  }

  private sendData(): void {
    if (this.rcptClosing || this.accepted.length === 0 || this.envelope.mode !== 'data') return this.envelopeAnswered();
    this.bodyStarted = true;
    this.request(DATA, 'data', {
      reply: (reply) => {
        this.record(this.envelope.recipients.length + 1, reply);
        this.envelopeAnswered();
      },
      error: (err) => this.fail(err),
    });
  }

  /** Records the reply to envelope command `i` (0 MAIL, then each RCPT, then DATA). */
  private record(i: number, reply: Reply): SendEvent | null {
    // Envelope command i ≥ 1 is RCPT for recipient i - 1, until the recipients run out (then DATA).
    const rcpt = i === 0 ? undefined : this.envelope.recipients[i - 1];
    if (reply.code === 421) this.closing = true;
    if (i === 0) this.replies.mail = reply;
    else if (rcpt) {
      this.replies.rcpts.push(reply);
      if (reply.code === 421) this.rcptClosing = true;
      // Pipelined after a refused MAIL, RCPT replies say only "need MAIL": not the recipients' fate.
      if (this.replies.mail?.code !== 250) return null;
      const recipient = rcpt.address;
      const accepted = isAccepted(reply);
      if (accepted) this.accepted.push(recipient);
      return { type: 'recipient', recipient, accepted, reply };
    } else {
      this.replies.data = reply;
      if (reply.code === 354) this.bodyStarted = true;
    }
    return null;
  }

  /** The envelope is answered (not stacked): fail with its refusal, or go on with the body. */
  private envelopeAnswered(): void {
    if (this.phase === 'done') return;
    const failure = this.envelopeFailure();
    if (!failure) {
      this.writer.cork();
      return this.startBody();
    }
    if (this.replies.data?.code !== 354) return this.fail(failure);
    // RFC 2920 §3.1: DATA got 354 although no recipient was accepted: end it with a lone dot.
    this.request(endOfData(0), 'dataEnd', { reply: () => this.fail(failure), error: (err) => this.fail(err) });
  }

  private envelopeFailure(): Error | undefined {
    return envelopeVerdict(this.envelope, this.replies);
  }

  // ---- the body ----

  private startBody(): void {
    this.phase = 'body';
    this.bodyStarted = true;
    const small = smallBody(this.body);
    if (this.envelope.mode === 'data') {
      if (small) return this.sendSmallDataBody(small);
      this.streamBody(progress$(writeDataBody$(this.session, this.writer, this.body)), () => [
        endOfData(this.expectedFinalReplies()),
      ]);
      return;
    }
    // BODY=BINARYMIME: the bytes go out untouched; otherwise line ends are canonicalised, no dot-stuffing.
    if (small) {
      const encoded = this.envelope.binary ? small : new BodyEncoder({ dotStuff: false, terminate: false }).push(small);
      this.emit(progressOf(encoded.length));
      return this.sendFinal(bdat(encoded, true, this.expectedFinalReplies()));
    }
    this.streamBdatBody();
  }

  /** DATA, the common case of a message in memory: encoded at once, it leaves in the same write as its dot. */
  private sendSmallDataBody(small: Uint8Array): void {
    const encoder = new BodyEncoder({ dotStuff: true, terminate: false, finalCrlf: true });
    const end = endOfData(this.expectedFinalReplies(), encoder.push(small), encoder.end());
    this.emit(progressOf(end.bytes.length - DOT_LINE.length));
    this.sendFinal([end]);
  }

  /**
   * BDAT (RFC 3030), streamed: each chunk as `BDAT n`, the last held back to go as
   * `BDAT n LAST`. With PIPELINING the chunks do not wait for their replies
   * (RFC 3030 §4.2); every reply is checked once the last one arrives.
   */
  private streamBdatBody(): void {
    let lastChunk: Uint8Array = NO_BYTES;
    const encode = this.envelope.binary ? identity : encodeBody({ dotStuff: false, terminate: false });
    const sizes$ = bodyChunks$(this.session, this.body, encode).pipe(
      withLast(),
      concatMap(({ value, last }) => {
        if (!last) return this.bdatChunk$(value);
        lastChunk = value;
        return of(value.length);
      }),
    );
    this.streamBody(progress$(sizes$), () => bdat(lastChunk, true, this.expectedFinalReplies()));
  }

  /** Relays a streamed body's progress, then sends its end. */
  private streamBody(progress: Observable<SendEvent>, end: () => Outgoing[]): void {
    const { connection } = this.session;
    this.bodySubscription = progress.subscribe({
      next: (event) => this.emit(event),
      error: (err: unknown) => this.fail(err),
      complete: () => this.sendFinal(end()),
    });
    // A body source waiting for its next chunk owes no reply: the connection's end must still reach it.
    this.bodySubscription.add(
      connection.closed$.subscribe(() =>
        this.fail(connection.failure ?? new SMTPServerDisconnected('Connection closed during the body')),
      ),
    );
  }

  private bdatChunk$(chunk: Uint8Array): Observable<number> {
    const out = bdat(chunk, false, 1);
    if (this.pipelining) {
      // RFC 3030 §4.2: read in the background; a dead connection fails the final reply anyway.
      this.request(out, 'dataBlock', { reply: (reply) => this.replies.chunks.push(reply), error: noop });
      return of(chunk.length);
    }
    return new Observable<number>((subscriber) => {
      this.request(out, 'dataBlock', {
        reply: (reply) => {
          if (reply.code !== 250) return subscriber.error(SMTPDataError.fromReply(reply, 'BDAT'));
          subscriber.next(chunk.length);
          subscriber.complete();
        },
        error: (err) => subscriber.error(err),
      });
    });
  }

  /**
   * Writes the last bytes, hands the write lock to the next transaction, and
   * turns the final replies into events: `delivery` per recipient for LMTP
   * (RFC 2033 §4.2), then `sent`. Losing the connection now is "possibly delivered".
   */
  private sendFinal(group: readonly Outgoing[]): void {
    if (this.phase === 'done') return;
    const before = this.hooks.beforeEnd;
    if (before && !this.beforeEndRan) {
      this.beforeEndRan = true;
      const ms = this.session.timeouts.dataBlock;
      this.bodySubscription = defer(before)
        .pipe(timeout({ first: ms, with: () => throwError(() => new SMTPTimeoutError('beforeEnd', ms)) }))
        .subscribe({ complete: () => this.sendFinal(group), error: (err: unknown) => this.fail(err) });
      return;
    }
    // A connection already gone (or going) takes nothing: the message was certainly not delivered.
    if (this.session.connection.writable) this.phase = 'final';
    this.finalsExpected = Math.max(this.expectedFinalReplies(), 1);
    this.request(group, 'dataEnd', {
      reply: (reply) => {
        if (this.phase === 'done') return;
        const finals = this.replies.finals;
        finals.push(reply);
        // LMTP: the n-th final reply is the n-th accepted recipient's (RFC 2033 §4.2).
        const recipient = this.accepted[finals.length - 1];
        if (this.session.lmtp && recipient !== undefined) this.emit(this.delivery(recipient, reply));
        // Concluded once the rest of this read is handled and written: a stacked transaction's 354
        // often comes in the same segment, and its body should not wait for this one's subscribers
        // (and what they start). The reply is in, so nothing can fail this transaction any more.
        if (finals.length === this.finalsExpected) queueMicrotask(() => this.conclude());
      },
      error: (err) => this.fail(err),
    });
    this.released = true;
    this.release();
  }

  private delivery(recipient: string, reply: Reply): SendEvent {
    return { type: 'delivery', recipient, delivered: reply.code === 250, reply };
  }

  /** Once every final reply (and, stacked, every envelope reply) is in: `sent`, or the error they amount to. */
  private conclude(): void {
    if (this.phase !== 'final' || this.replies.finals.length < this.finalsExpected) return;
    if (this.stacked && !this.envelopeOver) return;
    let sent: SendEvent;
    try {
      sent = this.conclusion();
    } catch (err) {
      return this.fail(err);
    }
    this.phase = 'done';
    this.subscriber.next(sent);
    this.subscriber.complete();
  }

  /** The `sent` event, or the error the replies amount to. */
  private conclusion(): SendEvent {
    const verdict = transactionVerdict(this.envelope, this.replies, this.session.lmtp);
    if (verdict.type === 'sent') return verdict;
    if (verdict.error.code === 'ERR_SMTP_DATA' && verdict.error.smtpCode === 421) this.closing = true;
    throw verdict.error;
  }

  // ---- helpers ----

  /** One reply for SMTP; one per accepted recipient for LMTP (RFC 2033 §4.2). */
  private expectedFinalReplies(): number {
    return this.session.lmtp ? this.accepted.length : 1;
  }

  /** Writes with this transaction's turn, under the step's reply deadline. */
  private request(
    out: Outgoing | readonly Outgoing[],
    step: keyof Timeouts | 'rset',
    handler: ReplyHandler,
    turn = this.writer,
  ): void {
    const timeouts = this.session.timeouts;
    turn.request(out, { step, timeout: step === 'rset' ? timeouts.command : timeouts[step] }, handler);
  }

  private emit(event: SendEvent | null): void {
    if (event && this.phase !== 'done') this.subscriber.next(event);
  }

  /**
   * What a failure means once the last byte may have been written: a refused envelope (stacked
   * BDAT) means the body was never taken; otherwise the server may have accepted the message.
   */
  private afterLastByte(err: unknown): unknown {
    if (this.phase !== 'final' || hasCode(err, 'ERR_SMTP_POSSIBLY_DELIVERED')) return err;
    return this.envelopeFailure() ?? possiblyDelivered(err);
  }

  /**
   * A server may refuse a message while its body is still being written (a size limit, a content
   * filter: smtp-sink -A) and close. Its reply, unasked for, ended the connection; it is this
   * transaction's verdict, and a refusal, not a connection lost (which a pool would retry).
   */
  private refusedMidBody(phase: Phase): SMTPDataError | undefined {
    const why = this.session.connection.failure;
    if (phase !== 'body' || !hasCode(why, 'ERR_SMTP_PROTOCOL')) return undefined;
    const reply = (why as SMTPProtocolError).reply;
    if (!reply || reply.code < 400) return undefined;
    return SMTPDataError.fromReply(reply, this.envelope.mode === 'data' ? 'DATA' : 'BDAT');
  }

  /** smtplib's recovery: a 421 closes the connection; other refusals send RSET and keep it. */
  private fail(failure: unknown): void {
    const phase = this.phase;
    if (phase === 'done') return;
    // Stacked BDAT: the envelope's request may fail first, after the whole message was written.
    const err = isRefusal(failure) ? failure : (this.refusedMidBody(phase) ?? this.afterLastByte(failure));
    this.phase = 'done';
    this.bodySubscription?.unsubscribe();
    const { connection } = this.session;
    // The outcome first, then the lock, so outcomes come in the order the transactions were
    // queued: a downstream catchError tears this transaction down before it passes the outcome
    // on, and a hand-over from that teardown would let the next one fail and report first.
    const failed = (): void => {
      this.kept = true;
      this.subscriber.error(err);
      this.release();
    };
    if (!isRefusal(err) || !connection.alive) {
      // A body cut off midway (its source failed, say): the server still reads it, so nothing
      // else may be written on this connection.
      if (phase === 'body' && connection.alive) connection.destroy(err);
      return failed();
    }
    if (this.closing) {
      connection.destroy(err);
      return failed();
    }
    const rset = (turn: Turn, done: () => void): void => {
      this.request(
        RSET,
        'rset',
        {
          reply: (reply) => {
            // A server that will not reset leaves the connection in an unknown state: never reuse it.
            if (reply.code !== 250) connection.destroy(SMTPResponseException.fromReply(reply, 'RSET'));
            done();
          },
          error: done,
        },
        turn,
      );
    };
    // After the final reply the channel may be with the next transaction: queue behind it.
    if (!this.released) return rset(this.writer, failed);
    this.cancelWait = connection.turn((turn) => {
      if (!connection.alive) {
        turn.release();
        return failed();
      }
      rset(turn, () => {
        failed();
        turn.release();
      });
    });
  }

  /** The teardown: runs however the transaction ends; after an early unsubscribe it cleans up. */
  abandon(): void {
    this.cancelWait();
    this.bodySubscription?.unsubscribe();
    const phase = this.phase;
    this.phase = 'done';
    const { connection } = this.session;
    if (
      phase === 'envelope' &&
      this.pipelining &&
      this.envelope.mode === 'data' &&
      !this.groupOver &&
      connection.alive
    ) {
      return this.abandonPipelinedGroup();
    }
    if ((phase === 'envelope' || phase === 'body') && connection.alive) {
      // The server is reading a body that will never end: the connection cannot be saved.
      if (this.bodyStarted) connection.destroy();
      // RFC 5321 §4.1.1.5: RSET aborts the transaction and keeps the connection. It goes in this
      // transaction's turn (so before the next one's MAIL) and, without PIPELINING, only once the
      // replies still owed are in; it has its own deadline.
      else this.request(RSET, 'rset', IGNORE);
    }
    if (!this.kept) this.release();
  }

  /**
   * Left while MAIL..DATA are out unanswered (PIPELINING): the server may be about to read a
   * body, so nothing else may be written yet. Keep the write lock, read the group's replies (the
   * transactions stacked before this one get their final replies meanwhile), then: DATA refused,
   * RSET; DATA accepted with no recipient, a lone dot (RFC 2920 §3.1) and RSET; DATA accepted
   * for some recipient, close, since a dot would deliver an empty message.
   */
  private abandonPipelinedGroup(): void {
    const { connection } = this.session;
    this.kept = true;
    this.afterGroup = (replies) => {
      const data = replies?.at(-1);
      if (replies && data) {
        const anyAccepted = replies.slice(1, -1).some(isAccepted);
        if (data.code === 354 && anyAccepted) connection.destroy();
        else {
          if (data.code === 354) this.request(LONE_DOT, 'dataEnd', IGNORE);
          this.request(RSET, 'rset', IGNORE);
        }
      }
      // Only now may the next transaction write.
      this.release();
    };
  }
}

/** A reply-based failure: the server said no, so the connection's state is known. */
function isRefusal(err: unknown): boolean {
  return isServerRefusal(err);
}

function possiblyDelivered(cause: unknown): SMTPPossiblyDeliveredError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new SMTPPossiblyDeliveredError(
    `The connection failed after the message was written and before the server confirmed it (${reason}); ` +
      'it may have been delivered: do not resend it blindly',
    { cause },
  );
}
