import * as net from 'node:net';
import * as tls from 'node:tls';
import { AsyncSubject, Observable, Observer, ReplaySubject, Subject, throwError, timeout as rxTimeout } from 'rxjs';
import {
  SMTPErrorCode,
  SMTPException,
  SMTPProtocolError,
  SMTPServerDisconnected,
  SMTPTimeoutError,
  hasCode,
} from '../errors';
import { Command, command, encodeCommands } from '../wire/command';
import { DEFAULT_REPLY_LIMITS, Reply, ReplyParser } from '../wire/reply';
import { DebugEvent, redactSecrets } from './debug';
import { Mutex } from './mutex';
import { ReplyDeadline, ReplyTimer } from './reply-deadline';
import { TlsIdentity, injectionError, socketFailure, startTls } from './tls-upgrade';

/** Raw bytes sent as part of a request (a BDAT chunk, the end-of-data dot). */
export interface Payload {
  readonly bytes: Uint8Array;
  /**
   * How many replies these bytes draw: the final `.` draws one (one per accepted
   * recipient in LMTP, RFC 2033 §4.2); a BDAT chunk's reply belongs to its command.
   */
  readonly replies: number;
  /** What `debug$` shows instead of the bytes. */
  readonly debugText: string;
}

/** Something a request writes: a command (one reply) or a payload. */
export type Outgoing = Command | Payload;

/** Where a request delivers: each reply in order, or the failure that ends them (once). */
export interface ReplyHandler {
  /** Called with each reply the request drew, in order. */
  readonly reply: (reply: Reply) => void;
  /** Called at most once, when the connection fails before every reply is in; no reply follows. */
  readonly error: (err: unknown) => void;
}

/** How one request is written and awaited (`Turn.request`, `SmtpConnection.request$`). */
export interface RequestOptions {
  /** Name of the step, for the timeout error (`mail`, `rcpt`, `dataEnd`, …). */
  readonly step?: string;
  /** How long to wait for each reply, in ms; default the connection's `replyTimeout`. */
  readonly timeout?: number;
  /**
   * Set on STARTTLS: on a 220 the connection must be upgraded before anything else
   * is read, and any byte that came with or after the 220 is an injection (CVE-2011-0411).
   */
  readonly upgrade?: boolean;
  /**
   * What the server must not be seen echoing (AUTH responses; the array may grow as the exchange
   * goes on). From this request on, the connection hides them in `debug$` and in its own errors,
   * whichever reply carries them.
   */
  readonly secrets?: readonly string[];
}

/** How a connection is built (by `connect$`). */
export interface ConnectionOptions extends TlsIdentity {
  /** Bounds on what the server may send; the rest from `DEFAULT_REPLY_LIMITS`. */
  readonly replyLimits?: Partial<typeof DEFAULT_REPLY_LIMITS> | undefined;
  /** The deadline of a reply whose request names none (the greeting, fire-and-forget commands), in ms. */
  readonly replyTimeout?: number | undefined;
  /** How debug$ names the other end when the socket has no address and port: a Unix socket's path. */
  readonly peer?: string | undefined;
}

/**
 * A turn on the connection's one ordered write channel. Only the holder of the turn writes; the
 * next caller's bytes wait until it is released. A transaction holds one from its first byte to
 * its last, so a NOOP, a QUIT or another transaction can never land inside its body.
 */
export interface Turn {
  /**
   * Writes commands (and payloads) in one write; `handler` gets their replies in order.
   * @return how many replies the group draws.
   */
  request(out: Outgoing | readonly Outgoing[], options: RequestOptions, handler: ReplyHandler): number;
  /** `request` as a cold Observable: written when subscribed, emits each reply, completes after the last. */
  request$(out: Outgoing | readonly Outgoing[], options: RequestOptions): Observable<Reply>;
  /** Writes body bytes that draw no reply of their own. @return false when the socket's buffer is full. */
  write(bytes: Uint8Array): boolean;
  /** Holds writes until the next tick, so that what is written now leaves in one segment. */
  cork(): void;
  /** Lets the next caller write (idempotent). */
  release(): void;
}

interface Slot {
  deliver: (reply: Reply) => void;
  fail: (err: unknown) => void;
  readonly upgrade: boolean;
  readonly timer: ReplyTimer;
}

/** A group held back because the server does not pipeline and replies are still owed. */
interface HeldWrite {
  readonly group: readonly Outgoing[];
  readonly slot: Slot;
  readonly replies: number;
}

const noop = (): void => undefined;
/** Failures that are a lost connection (or one that could not be trusted), not anyone's verdict. */
const LOSSES: readonly SMTPErrorCode[] = [
  'ERR_SMTP_SERVER_DISCONNECTED',
  'ERR_SMTP_TIMEOUT',
  'ERR_SMTP_POOL_CLOSED',
  'ERR_SMTP_TLS_CERTIFICATE',
];
const QUIT = command('QUIT');
/** RFC 5321 §4.5.3.2's figure for commands the RFC does not name. */
export const DEFAULT_REPLY_TIMEOUT = 5 * 60_000;
/** How long a graceful close waits for the server's side before destroying the socket. */
const END_GRACE_MS = 5_000;
const isCommand = (out: Outgoing): out is Command => 'line' in out;

/**
 * One SMTP connection as streams: the replies the server sends (`replies$`), the commands we
 * send (`commands`), and `request$`, which pairs replies with commands strictly first-in
 * first-out so that several commands may be in flight at once (RFC 2920 PIPELINING rests on this).
 *
 * The connection owns order and time: every write goes through its one ordered channel (`turn`),
 * nothing is pipelined to a server that did not offer PIPELINING (`allowPipelining`), every reply
 * awaited has a deadline, and a failure settles every outstanding request.
 *
 * Built by `connect$`; the session operators in `lib/session/` drive it.
 */
export class SmtpConnection {
  private readonly repliesSubject = new Subject<Reply>();
  private readonly debugSubject = new Subject<DebugEvent>();
  private readonly greetingSubject = new ReplaySubject<Reply>(1);
  private readonly closedSubject = new AsyncSubject<void>();
  private readonly pending: Slot[] = [];
  private readonly held: HeldWrite[] = [];
  private readonly lock = new Mutex();
  private readonly deadline = new ReplyDeadline(
    () => this.pending[0]?.timer,
    ({ step, ms }) => this.destroy(new SMTPTimeoutError(step, ms)),
  );
  private readonly replyTimeout: number;
  private parser: ReplyParser;
  private ended?: unknown;
  /** A graceful close was asked for (QUIT or `end()`): nothing new is accepted. */
  private closeRequested = false;
  /** QUIT went out or our side was ended: the server's close is expected, not a failure. */
  private quitting = false;
  /** QUIT is written: nothing may follow it. */
  private quitSent = false;
  private upgrading = false;
  /** A protocol failure was read: the connection ends with `err` once the replies before it are handled. */
  private doomed: { readonly err: Error } | undefined;
  private pipelined = false;
  /** Every `RequestOptions.secrets` list given so far. */
  private readonly secrets: (readonly string[])[] = [];
  private secureFlag: boolean;
  /** The first debug line, kept for `debug$`'s subscribers. */
  private readonly connected: DebugEvent;

  /** Every reply, in arrival order (hot). Completes on a graceful close, errors on a failure. */
  readonly replies$: Observable<Reply> = this.repliesSubject.asObservable();
  /**
   * Wire events, secrets redacted (hot). Each subscriber first gets the "connected to …" line, which
   * happened before anyone could subscribe.
   */
  readonly debug$: Observable<DebugEvent> = new Observable<DebugEvent>((subscriber) => {
    subscriber.next(this.connected);
    return this.debugSubject.subscribe(subscriber);
  });
  /** The server's greeting: the first reply on the connection. */
  readonly greeting$: Observable<Reply> = this.greetingSubject.asObservable();
  /** Emits and completes once the socket is closed, however that happened. */
  readonly closed$: Observable<void> = this.closedSubject.asObservable();

  /**
   * Fire-and-forget commands: each takes its turn on the ordered channel like any other, with
   * the connection's reply deadline; its reply only shows up on `replies$`.
   * `complete()` closes the connection gracefully (after what is queued); `error(e)` destroys it.
   */
  readonly commands: Observer<Command> = {
    next: (cmd) => {
      this.turn((turn) => {
        turn.request(cmd, {}, { reply: noop, error: noop });
        turn.release();
      });
    },
    error: (err: unknown) => this.destroy(err),
    complete: () => this.end(),
  };

  constructor(
    private socket: net.Socket,
    private readonly options: ConnectionOptions = {},
  ) {
    this.replyTimeout = options.replyTimeout ?? DEFAULT_REPLY_TIMEOUT;
    this.parser = this.newParser();
    this.secureFlag = socket instanceof tls.TLSSocket;
    // The greeting is the reply to the connection itself: it owns the first slot.
    this.pending.push({
      deliver: (reply) => {
        this.greetingSubject.next(reply);
        this.greetingSubject.complete();
      },
      fail: (err) => this.greetingSubject.error(err),
      upgrade: false,
      timer: { step: 'greeting', ms: this.replyTimeout },
    });
    this.attach(socket);
    this.deadline.arm();
    const text = `connected to ${this.remote()}${this.secureFlag ? ' (TLS)' : ''}`;
    this.connected = { direction: 'info', text, time: Date.now() };
  }

  /** Whether the connection is encrypted (implicit TLS or after STARTTLS). */
  get secure(): boolean {
    return this.secureFlag;
  }

  /** Whether the connection takes new work: not failed, and no graceful close asked for. */
  get open(): boolean {
    return this.ended === undefined && !this.closeRequested;
  }

  /** Whether the socket is still up (a transaction under way may finish even while a close is queued). */
  get alive(): boolean {
    return this.ended === undefined;
  }

  /** Whether a write now would go out: not ended, not doomed by a violation already read, no QUIT sent. */
  get writable(): boolean {
    return this.refusal() === undefined;
  }

  /** Whether a graceful close (QUIT, `end()`) is asked for or under way. */
  get closing(): boolean {
    return this.closeRequested && this.ended === undefined;
  }

  /**
   * Why the connection ended, or is about to (a violation or an unsolicited reply already read):
   * undefined while it is open, null after a graceful close.
   */
  get failure(): unknown {
    // `ended` is null after a graceful close: that is an answer too.
    return this.ended !== undefined ? this.ended : this.doomed?.err;
  }

  /** Nothing under way: no reply owed, no write held back, nobody holding or waiting for a turn. */
  get idle(): boolean {
    return this.pending.length === 0 && this.held.length === 0 && !this.lock.busy;
  }

  /** Replies still owed by the server, and requests held back for them. */
  get inFlight(): number {
    return this.pending.length + this.held.length;
  }

  /** Whether the server pipelines (RFC 2920): groups and stacked writes are allowed. */
  get pipelining(): boolean {
    return this.pipelined;
  }

  /** The local address of the socket (for the default EHLO name). */
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  /**
   * What TLS negotiated, read-only (for `rx-smtp probe` and logs): undefined on a plaintext connection.
   * `subject` is the peer certificate's CN, `validTo` its expiry as OpenSSL prints it.
   */
  tlsInfo(): { protocol: string; cipher: string; subject: string; validTo: string } | undefined {
    if (!(this.socket instanceof tls.TLSSocket)) return undefined;
    // Node hands back {} when the peer sent no certificate, whatever its type says.
    const cert: Partial<tls.PeerCertificate> = this.socket.getPeerCertificate();
    const cn = cert.subject?.CN ?? '';
    const subject = Array.isArray(cn) ? cn.join(', ') : cn;
    return {
      protocol: this.socket.getProtocol() ?? '',
      cipher: this.socket.getCipher().name,
      subject,
      validTo: cert.valid_to ?? '',
    };
  }

  /** The host name TLS verifies against (the one connected to), when it is a name. */
  get servername(): string | undefined {
    return this.options.servername;
  }

  /**
   * Records whether the server offered PIPELINING (from EHLO). Until then, and after STARTTLS,
   * each write waits until every reply owed has arrived (RFC 5321 §4.1.1 lockstep).
   */
  allowPipelining(on: boolean): void {
    this.pipelined = on;
    if (!on) return;
    let next: HeldWrite | undefined;
    while ((next = this.held.shift())) this.writeGroup(next.group, next.slot, next.replies);
  }

  /**
   * Waits for the connection's ordered write channel. `onTurn` runs once every earlier holder has
   * released it (at once when it is free); it must call `turn.release()`. On a connection that
   * already failed, the turn is still given, and every request made with it fails at once.
   *
   * @return cancels the wait if the turn was not given yet; does nothing after.
   */
  turn(onTurn: (turn: Turn) => void): () => void {
    return this.lock.acquire((release) => onTurn(new ConnectionTurn(this, release)));
  }

  /**
   * Writes commands (and payloads) in one write, in turn, and emits their replies in order.
   *
   * ```
   * request$([MAIL, RCPT, DATA]):  --250--250--354|
   * ```
   *
   * Cold: nothing is written until subscribed, and then only once the channel is free.
   * Unsubscribing before the write takes it back; after, it does not unpair anything: the replies
   * still owed are read and dropped. A reply whose deadline expires destroys the connection
   * (its state is unknown).
   *
   * @param out a command, a payload, or a group written in one go.
   * @param options step name, reply deadline, STARTTLS upgrade flag.
   * @return the replies, one per command and per payload that expects one.
   */
  request$(out: Outgoing | readonly Outgoing[], options: RequestOptions = {}): Observable<Reply> {
    // The turn goes back as soon as the bytes are written: pipelined callers need not wait.
    return this.withTurn$((turn) => lastRequest$(turn, out, options));
  }

  /**
   * Runs `work` while holding the connection's write channel: subscribed once every earlier
   * holder has let go, and the channel is released when the work ends (or earlier, by the work).
   *
   * ```
   * withTurn$(t => DATA, body, dot):  ------(turn)--354--250|
   * ```
   *
   * @param work what to write; it may call `turn.release()` once its last byte is written.
   * @return the work's notifications.
   */
  withTurn$<T>(work: (turn: Turn) => Observable<T>): Observable<T> {
    return this.lock.run$((lock) => work(new ConnectionTurn(this, lock.release)));
  }

  /**
   * smtplib's `quit()` at the connection: QUIT in turn (after whatever is queued), then our side
   * of the socket is closed once the reply is in (or its deadline expired).
   *
   * @return the reply to QUIT.
   */
  quit$(options: RequestOptions = {}): Observable<Reply> {
    return new Observable<Reply>((subscriber) => {
      this.closeRequested = true;
      let active = true;
      const cancel = this.turn((turn) => {
        // The server closes after its 221: from now on that close is expected, not a failure.
        if (this.ended === undefined) this.quitting = true;
        turn.request(
          QUIT,
          { step: 'quit', ...options },
          {
            reply: (reply) => {
              this.end();
              if (active) {
                subscriber.next(reply);
                subscriber.complete();
              }
            },
            error: (err) => active && subscriber.error(err),
          },
        );
        this.quitSent = true;
        turn.release();
      });
      return () => {
        active = false;
        cancel();
      };
    });
  }

  /**
   * An operator that destroys the connection when the source stays silent
   * for `ms` (a timer per reply, RFC 5321 §4.5.3.2) and errors with `SMTPTimeoutError`.
   */
  timeoutAfter<T>(step: string, ms: number): (source: Observable<T>) => Observable<T> {
    return rxTimeout<T, Observable<never>>({
      each: ms,
      with: () => {
        const err = new SMTPTimeoutError(step, ms);
        this.destroy(err);
        return throwError(() => err);
      },
    });
  }

  /** Resolves when the socket can take more bytes; undefined when it can now. */
  whenWritable(): Promise<void> | undefined {
    if (!this.socket.writableNeedDrain || this.ended !== undefined) return undefined;
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /**
   * smtplib's `starttls()` at the connection: STARTTLS in turn, and on 220 the socket is wrapped
   * in TLS (RFC 3207 §4.2) before anyone else may write. The certificate is verified against the
   * host connected to. Emits the reply once the handshake succeeded, or a refusal as it is; any
   * byte that came with or after the 220 aborts the connection (CVE-2011-0411). Capabilities
   * must be learnt again: pipelining is off until the next EHLO.
   *
   * @param tlsOptions Node TLS options (`ca`, `rejectUnauthorized`, …).
   * @param timeout the deadline of the reply and of the handshake, in ms.
   * @return the reply to STARTTLS.
   */
  starttls$(tlsOptions: tls.ConnectionOptions, timeout: number): Observable<Reply> {
    return new Observable<Reply>((subscriber) => {
      let handshake: (() => void) | undefined;
      /** The turn, from STARTTLS written until the upgrade settled. */
      let holding: Turn | undefined;
      const settle = (): void => {
        const turn = holding;
        holding = undefined;
        turn?.release();
      };
      const cancel = this.turn((given) => {
        holding = given;
        given.request(
          command('STARTTLS'),
          { step: 'starttls', timeout, upgrade: true },
          {
            reply: (reply) => {
              if (reply.code !== 220) {
                settle();
                subscriber.next(reply);
                subscriber.complete();
                return;
              }
              handshake = this.upgrade(tlsOptions, timeout, (err) => {
                settle();
                if (err !== undefined) return subscriber.error(err);
                subscriber.next(reply);
                subscriber.complete();
              });
            },
            error: (err) => {
              settle();
              subscriber.error(err);
            },
          },
        );
      });
      return () => {
        cancel();
        if (!holding) return;
        // Left before the upgrade settled: the connection is neither plaintext nor TLS any more, or is
        // about to change under its callers. It closes, and the turn goes on so that they hear so.
        handshake?.();
        this.destroy();
        settle();
      };
    });
  }

  /**
   * Says goodbye once what is running now has settled (a transaction that reports its refusal
   * gives its turn back right after): QUIT when idle then, else the socket is destroyed, since a
   * body or a reply is still under way and its state is unknown. From now on nothing new is taken.
   */
  closeWhenIdle(timeout: number): void {
    if (!this.open) return;
    this.closeRequested = true;
    queueMicrotask(() => {
      if (this.ended !== undefined) return;
      if (!this.idle) return this.destroy();
      this.quit$({ timeout }).subscribe({ error: noop });
    });
  }

  /** Half-closes the socket gracefully, in turn (never inside a body); the server's close completes the streams. */
  end(): void {
    if (this.ended !== undefined) return;
    this.closeRequested = true;
    this.turn((turn) => {
      if (this.ended !== undefined || this.socket.writableEnded) return turn.release();
      this.quitting = true;
      this.info('closing');
      this.socket.end();
      // Only now: whoever waited behind the close finds it closed instead of writing just before it.
      turn.release();
      // A server that never closes its side must not keep the socket (and the process) alive.
      const fallback = setTimeout(() => this.socket.destroy(), END_GRACE_MS);
      fallback.unref();
      this.socket.once('close', () => clearTimeout(fallback));
    });
  }

  /** Closes the socket at once. Every outstanding request errors with `err` (or SMTPServerDisconnected). */
  destroy(err?: unknown): void {
    if (this.ended === undefined) {
      // A violation already read stays the reason, whoever tears the connection down first.
      this.finish(err ?? this.doomed?.err ?? new SMTPServerDisconnected('Connection closed by the client'));
    }
    this.socket.destroy();
  }

  /** @internal The turn's request: writes now, or holds the group back for lockstep. */
  send(out: Outgoing | readonly Outgoing[], options: RequestOptions, handler: ReplyHandler): number {
    const group = Array.isArray(out) ? (out as readonly Outgoing[]) : [out as Outgoing];
    let replies = 0;
    for (const o of group) replies += isCommand(o) ? 1 : o.replies;
    let failed = false;
    // One slot object, queued once per reply owed: every reply of the group goes to the same handler.
    const slot: Slot = {
      deliver: handler.reply,
      fail: (err) => {
        if (failed) return;
        failed = true;
        handler.error(err);
      },
      upgrade: options.upgrade === true,
      timer: { step: options.step ?? 'reply', ms: options.timeout ?? this.replyTimeout },
    };
    if (options.secrets && !this.secrets.includes(options.secrets)) this.secrets.push(options.secrets);
    const refusal = this.refusal();
    if (refusal !== undefined) slot.fail(refusal);
    // RFC 5321 §4.1.1 / RFC 2920: without PIPELINING, a command waits for every reply owed.
    else if (!this.pipelined && (this.pending.length > 0 || this.held.length > 0))
      this.held.push({ group, slot, replies });
    else this.writeGroup(group, slot, replies);
    return replies;
  }

  /** @internal The turn's raw write (body bytes). */
  write(bytes: Uint8Array): boolean {
    const refusal = this.refusal();
    if (refusal !== undefined) throw refusal;
    return this.socket.write(bytes);
  }

  /**
   * Why nothing more may be written, if so: the connection ended, a violation read already dooms it,
   * or QUIT went out (or our side closed) and the server is only saying goodbye.
   */
  private refusal(): Error | undefined {
    if (this.ended !== undefined) return this.disconnectedError();
    if (this.doomed) return this.doomed.err;
    if (this.quitSent || this.socket.writableEnded) {
      return new SMTPServerDisconnected('The connection is closing (QUIT sent, or our side closed)');
    }
    return undefined;
  }

  /** @internal The turn's cork: what is written before the next tick leaves in one segment. */
  cork(): void {
    const socket = this.socket;
    socket.cork();
    process.nextTick(() => socket.uncork());
  }

  private writeGroup(group: readonly Outgoing[], slot: Slot, replies: number): void {
    // Runs of commands are encoded together; payloads go as they are.
    const chunks: Uint8Array[] = [];
    let commands: Command[] = [];
    for (const out of group) {
      this.emitDebug('send', out.debugText);
      if (isCommand(out)) {
        commands.push(out);
        continue;
      }
      if (commands.length > 0) chunks.push(encodeCommands(commands));
      commands = [];
      chunks.push(out.bytes);
    }
    if (commands.length > 0) chunks.push(encodeCommands(commands));
    const wasIdle = this.pending.length === 0;
    for (let i = 0; i < replies; i++) this.pending.push(slot);
    if (wasIdle) this.deadline.arm();
    const single = chunks.length === 1 ? chunks[0] : undefined;
    this.socket.write(single ?? Buffer.concat(chunks));
  }

  /** Wraps the socket in TLS after a 220; `done` gets undefined on success, else the failure. */
  private upgrade(options: tls.ConnectionOptions, timeout: number, done: (err?: unknown) => void): () => void {
    if (!this.upgrading) {
      done(new SMTPException('STARTTLS upgrade without a 220 reply'));
      return noop;
    }
    const raw = this.socket;
    this.detach(raw);
    const secure = startTls(raw, options, this.options);
    this.socket = secure;
    this.parser = this.newParser();
    this.pipelined = false;
    this.attach(secure);
    // A server that says 220 and never shakes hands must not hang us.
    const timer = setTimeout(() => this.destroy(new SMTPTimeoutError('starttls', timeout)), timeout);
    const cleanup = (): void => {
      clearTimeout(timer);
      secure.off('secureConnect', onSecure);
      secure.off('close', onFailure);
    };
    const onSecure = (): void => {
      cleanup();
      this.upgrading = false;
      this.secureFlag = true;
      this.info(`TLS established (${secure.getProtocol() ?? 'unknown protocol'})`);
      done();
    };
    // The connection's own listeners record why (a certificate error, say); the upgrade fails with that.
    const onFailure = (): void => {
      cleanup();
      done(this.disconnectedError());
    };
    secure.once('secureConnect', onSecure);
    secure.once('close', onFailure);
    return cleanup;
  }

  private onData = (chunk: Buffer): void => {
    if (this.doomed) return;
    if (this.upgrading) {
      this.destroy(injectionError());
      return;
    }
    // Replies completed before a violation in the same chunk are still theirs: a 250 to the
    // final dot followed by garbage is a delivered message, then a broken connection.
    const replies: Reply[] = [];
    let violation: { err: Error } | undefined;
    try {
      this.parser.push(chunk, replies);
    } catch (thrown) {
      // ReplyParser throws only its own errors (SMTPProtocolError, SMTPReplyLimitError).
      const err = thrown as Error;
      // The parser quotes the start of the line it refused, which may echo a secret.
      err.message = this.redact(err.message);
      violation = { err };
      // Known before those replies are dispatched: nothing they set off may be written (a body after a 354).
      this.doomed = violation;
    }
    for (const [i, reply] of replies.entries()) {
      // dispatch() below may end the connection or doom it anew: checked before each reply.
      if (this.ended !== undefined || this.doomed !== violation) break;
      this.dispatch(reply, i < replies.length - 1 || this.parser.buffered > 0 || violation !== undefined);
    }
    if (violation && this.doomed === violation) this.failAfterReplies(violation.err);
  };

  /**
   * @internal `text` with every secret sent on this connection hidden (see `RequestOptions.secrets`):
   * a server may echo an earlier exchange's response in a later reply.
   */
  redact(text: string): string {
    let out = text;
    for (const secrets of this.secrets) out = redactSecrets(out, secrets);
    return out;
  }

  private dispatch(reply: Reply, moreBytes: boolean): void {
    const slot = this.pending[0];
    if (this.debugSubject.observed) {
      for (const line of reply.lines) this.emitDebug('receive', this.redact(`${reply.code} ${line}`));
    }
    if (!slot) {
      // RFC 5321 §3.8: a server may announce its shutdown with an unsolicited 421.
      const message = this.redact(reply.message);
      this.failAfterReplies(
        reply.code === 421
          ? new SMTPServerDisconnected(`Server closing the connection: ${reply.code} ${message}`)
          : new SMTPProtocolError(`Unsolicited reply from the server: ${reply.code} ${message}`, {
              reply: { ...reply, message, lines: reply.lines.map((line) => this.redact(line)) },
            }),
      );
      return;
    }
    if (slot.upgrade && reply.code === 220) {
      // Still queued: destroy() settles it with the error, like every other request owed.
      if (moreBytes) return this.destroy(injectionError());
      this.upgrading = true;
    }
    this.pending.shift();
    this.deadline.arm();
    this.repliesSubject.next(reply);
    slot.deliver(reply);
    this.flushHeld();
  }

  /**
   * Ends the connection once what the replies read so far set off has run: a transaction that just
   * got its final 250 reports `sent` (it concludes in a microtask) before the connection's failure
   * reaches its session. Nothing more is read meanwhile.
   */
  private failAfterReplies(err: Error): void {
    this.doomed = { err };
    queueMicrotask(() => this.destroy(err));
  }

  /** Lockstep: once every reply owed is in, the next held group goes. */
  private flushHeld(): void {
    // A group that draws no reply leaves nothing owed: the one held behind it goes at once.
    while (this.pending.length === 0 && this.ended === undefined && !this.doomed && !this.upgrading) {
      const next = this.held.shift();
      if (!next) return;
      this.writeGroup(next.group, next.slot, next.replies);
    }
  }

  // A reply already read outranks the socket's own end: a server that answers 354 and 550 in one
  // segment, then resets, fails the body's first write (made on the 354) before the 550 is handled.
  private onError = (err: Error): void => {
    this.finish(this.doomed ? this.doomed.err : socketFailure(err, 'Connection error'));
  };

  private onClose = (): void => {
    this.finish(this.quitting && this.pending.length === 0 ? null : (this.doomed?.err ?? this.disconnectedError()));
    this.info('closed');
    this.closedSubject.next();
    this.closedSubject.complete();
    this.debugSubject.complete();
  };

  /** Ends the streams once: `null` for a graceful close, else the error every outstanding request gets. */
  private finish(err: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = err;
    this.deadline.clear();
    const failure = err ?? this.disconnectedError();
    const slots = [...this.pending.splice(0), ...this.held.splice(0).map((h) => h.slot)];
    for (const slot of slots) slot.fail(failure);
    this.greetingSubject.error(failure);
    if (err === null) this.repliesSubject.complete();
    else this.repliesSubject.error(err);
  }

  /**
   * What a request on a dead connection gets: the loss itself when it was one (a timeout, a
   * certificate that failed), never a refusal that closed it (that verdict belonged to its message).
   */
  private disconnectedError(): SMTPException {
    const why = this.ended;
    if (LOSSES.some((code) => hasCode(why, code))) return why as SMTPException;
    return new SMTPServerDisconnected('Connection unexpectedly closed');
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private detach(socket: net.Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
  }

  private newParser(): ReplyParser {
    return new ReplyParser({ ...DEFAULT_REPLY_LIMITS, ...this.options.replyLimits });
  }

  private remote(): string {
    const { remoteAddress, remotePort } = this.socket;
    return remoteAddress && remotePort !== undefined
      ? `${remoteAddress}:${remotePort}`
      : (this.options.peer ?? this.options.servername ?? 'socket');
  }

  private info(text: string): void {
    this.emitDebug('info', text);
  }

  private emitDebug(direction: DebugEvent['direction'], text: string): void {
    if (this.debugSubject.observed) this.debugSubject.next({ direction, text, time: Date.now() });
  }
}

/**
 * A turn's last request: written when subscribed, and the turn given back at once, so the next
 * caller's bytes may follow while these replies are still owed.
 *
 * @return the replies, as `Turn.request$` emits them.
 */
export function lastRequest$(
  turn: Turn,
  out: Outgoing | readonly Outgoing[],
  options: RequestOptions,
): Observable<Reply> {
  return new Observable<Reply>((subscriber) => {
    const replies = turn.request$(out, options).subscribe(subscriber);
    turn.release();
    return replies;
  });
}

/** A holder's handle on the channel: writes while held, nothing after release. */
class ConnectionTurn implements Turn {
  private released = false;

  constructor(
    private readonly connection: SmtpConnection,
    private readonly giveBack: () => void,
  ) {}

  request(out: Outgoing | readonly Outgoing[], options: RequestOptions, handler: ReplyHandler): number {
    this.assertHeld();
    return this.connection.send(out, options, handler);
  }

  request$(out: Outgoing | readonly Outgoing[], options: RequestOptions): Observable<Reply> {
    return new Observable<Reply>((subscriber) => {
      let received = 0;
      let active = true;
      const expected = this.request(out, options, {
        reply: (reply) => {
          if (!active) return;
          subscriber.next(reply);
          if (++received === expected) subscriber.complete();
        },
        error: (err) => active && subscriber.error(err),
      });
      if (expected === 0) subscriber.complete();
      // Unsubscribing does not unpair anything: the replies still owed are read and dropped.
      return () => {
        active = false;
      };
    });
  }

  write(bytes: Uint8Array): boolean {
    this.assertHeld();
    return this.connection.write(bytes);
  }

  cork(): void {
    this.connection.cork();
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.giveBack();
  }

  private assertHeld(): void {
    // A programming error of ours, never a server's doing: a released turn must not write.
    if (this.released) throw new SMTPException('rx-smtp: a write after the turn was released');
  }
}
