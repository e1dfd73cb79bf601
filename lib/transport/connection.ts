import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  AsyncSubject,
  Observable,
  Observer,
  ReplaySubject,
  Subject,
  throwError,
  timeout as rxTimeout,
} from 'rxjs';
import {
  SMTPException,
  SMTPProtocolError,
  SMTPServerDisconnected,
  SMTPTimeoutError,
} from '../errors';
import { Command, encodeCommands } from '../wire/command';
import { DEFAULT_REPLY_LIMITS, Reply, ReplyParser } from '../wire/reply';
import { DebugEvent } from './debug';
import { Mutex } from './mutex';

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

/** Where `requestWith` delivers: each reply in order, or the failure that ends them. */
export interface ReplyHandler {
  reply(reply: Reply): void;
  error(err: unknown): void;
}

export interface RequestOptions {
  /** Name of the step, for the timeout error (`mail`, `rcpt`, `dataEnd`, …). */
  readonly step?: string;
  /** How long to wait for each reply, in ms; unset: no timer. */
  readonly timeout?: number;
  /**
   * Set on STARTTLS: on a 220 the connection must be upgraded before anything else
   * is read, and any byte that came with or after the 220 is an injection (CVE-2011-0411).
   */
  readonly upgrade?: boolean;
}

interface Slot {
  deliver: (reply: Reply) => void;
  fail: (err: unknown) => void;
  readonly upgrade: boolean;
  /** The reply timer, started when this slot is next in line (not when its command was written). */
  readonly timer?: ReplyTimer;
}

interface ReplyTimer {
  readonly step: string;
  readonly ms: number;
}

const noop = (): void => undefined;
/** The longest delay Node's setTimeout honours (2^31 - 1 ms). */
const MAX_TIMER_MS = 2_147_483_647;
/** How long a graceful close waits for the server's side before destroying the socket. */
const END_GRACE_MS = 5_000;
const isCommand = (out: Outgoing): out is Command => 'line' in out;

/**
 * One SMTP connection as streams: the replies the server sends (`replies$`),
 * the commands we send (`commands`), and `request$`, which pairs replies with
 * commands strictly first-in first-out so that several commands may be in
 * flight at once (RFC 2920 PIPELINING rests on this).
 *
 * Built by `connect$`; the session operators in `lib/session/` drive it.
 */
export class SmtpConnection {
  private readonly repliesSubject = new Subject<Reply>();
  private readonly debugSubject = new Subject<DebugEvent>();
  private readonly greetingSubject = new ReplaySubject<Reply>(1);
  private readonly closedSubject = new AsyncSubject<void>();
  private readonly pending: Slot[] = [];
  private parser: ReplyParser;
  private ended?: unknown;
  private quitting = false;
  private upgrading = false;
  private secureFlag: boolean;
  /** The reply timer of the head slot: its step, when it expires, and the Node timer that checks. */
  private headStep?: ReplyTimer;
  private headDeadline = 0;
  private headTimer?: NodeJS.Timeout;
  private headTimerDue = 0;

  /**
   * Serialises transactions' writes: each holds it from its first byte to its
   * last, and releases it before its final reply arrives, so transactions stack.
   */
  readonly writeLock = new Mutex();

  /** Every reply, in arrival order (hot). Completes on a graceful close, errors on a failure. */
  readonly replies$: Observable<Reply> = this.repliesSubject.asObservable();
  /** Wire events, secrets redacted (hot). */
  readonly debug$: Observable<DebugEvent> = this.debugSubject.asObservable();
  /** The server's greeting: the first reply on the connection. */
  readonly greeting$: Observable<Reply> = this.greetingSubject.asObservable();
  /** Emits and completes once the socket is closed, however that happened. */
  readonly closed$: Observable<void> = this.closedSubject.asObservable();

  /**
   * Fire-and-forget commands: each one is written at once and its reply is
   * paired FIFO like any other, but only shows up on `replies$`.
   * `complete()` closes the connection gracefully; `error(e)` destroys it.
   */
  readonly commands: Observer<Command> = {
    next: (cmd) => this.send([cmd], { deliver: noop, fail: noop, upgrade: false }, 1),
    error: (err: unknown) => this.destroy(err),
    complete: () => this.end(),
  };

  constructor(
    private socket: net.Socket,
    private readonly options: { readonly replyLimits?: Partial<typeof DEFAULT_REPLY_LIMITS>; readonly servername?: string } = {},
  ) {
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
    });
    this.attach(socket);
    this.info(`connected to ${this.remote()}${this.secureFlag ? ' (TLS)' : ''}`);
  }

  /** Whether the connection is encrypted (implicit TLS or after STARTTLS). */
  get secure(): boolean {
    return this.secureFlag;
  }

  /** Whether the connection can still carry commands. */
  get open(): boolean {
    return this.ended === undefined && !this.quitting;
  }

  /** Whether a graceful close (QUIT, `end()`) is under way. */
  get closing(): boolean {
    return this.quitting && this.ended === undefined;
  }

  /** Why the connection ended: undefined while it is open, null after a graceful close. */
  get failure(): unknown {
    return this.ended;
  }

  /** Replies still owed by the server. */
  get inFlight(): number {
    return this.pending.length;
  }

  /** The local address of the socket (for the default EHLO name). */
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  /** The host name TLS verifies against (the one connected to). */
  get servername(): string | undefined {
    return this.options.servername;
  }

  /**
   * Writes commands (and payloads) in one write and emits their replies in order.
   *
   * ```
   * request$([MAIL, RCPT, DATA]):  --250--250--354|
   * ```
   *
   * Cold: nothing is written until subscribed. Unsubscribing early does not
   * unpair anything: the replies still owed are read and dropped.
   * A reply timer that expires destroys the connection (its state is unknown).
   *
   * @param out a command, a payload, or a group written in one go.
   * @param options step name, reply timeout, STARTTLS upgrade flag.
   * @return the replies, one per command and per payload that expects one.
   */
  request$(out: Outgoing | readonly Outgoing[], options: RequestOptions = {}): Observable<Reply> {
    return new Observable<Reply>((subscriber) => {
      let received = 0;
      let active = true;
      const expected = this.requestWith(out, options, {
        reply: (reply) => {
          if (!active) return;
          subscriber.next(reply);
          if (++received === expected) subscriber.complete();
        },
        error: (err) => active && subscriber.error(err),
      });
      if (expected === 0) subscriber.complete();
      return () => {
        active = false;
      };
    });
  }

  /**
   * `request$` for hot paths: writes at once and calls `handler.reply` per reply,
   * or `handler.error` once if the connection fails first (synchronously when it
   * is already gone). A transaction spends one call here per round trip instead
   * of an Observable.
   *
   * @return how many replies the group draws.
   */
  requestWith(out: Outgoing | readonly Outgoing[], options: RequestOptions, handler: ReplyHandler): number {
    const group = Array.isArray(out) ? (out as readonly Outgoing[]) : [out as Outgoing];
    let expected = 0;
    for (const o of group) expected += isCommand(o) ? 1 : o.replies;
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
      timer: options.timeout ? { step: options.step ?? 'reply', ms: options.timeout } : undefined,
    };
    this.send(group, slot, expected);
    return expected;
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

  /**
   * Holds writes until the next tick, so that what is written now leaves in one
   * segment (a body, its final dot and the next transaction's envelope).
   */
  cork(): void {
    const socket = this.socket;
    socket.cork();
    process.nextTick(() => socket.uncork());
  }

  /**
   * Writes body bytes that draw no reply of their own.
   * @return false when the socket's buffer is full: wait for `whenWritable()`.
   */
  write(bytes: Uint8Array): boolean {
    this.assertOpen();
    return this.socket.write(bytes);
  }

  /** Resolves when the socket can take more bytes (at once if it can now); undefined when it can now. */
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
   * Wraps the socket in TLS after a 220 to STARTTLS (RFC 3207 §4.2). Emits once
   * the handshake succeeded; a certificate that fails verification errors.
   */
  upgrade$(options: tls.ConnectionOptions = {}): Observable<void> {
    return new Observable<void>((subscriber) => {
      if (!this.upgrading) {
        subscriber.error(new SMTPException('upgrade$ called without a 220 reply to STARTTLS'));
        return;
      }
      const raw = this.socket;
      this.detach(raw);
      const servername = options.servername ?? this.options.servername;
      const secure = tls.connect({
        ...options,
        socket: raw,
        ...(servername ? { servername } : {}),
      });
      this.socket = secure;
      this.parser = this.newParser();
      this.attach(secure);
      const onSecure = (): void => {
        this.upgrading = false;
        this.secureFlag = true;
        this.info(`TLS established (${secure.getProtocol() ?? 'unknown protocol'})`);
        subscriber.next();
        subscriber.complete();
      };
      const onFailure = (): void => subscriber.error(this.disconnectedError());
      secure.once('secureConnect', onSecure);
      // The connection's own listeners record why (a certificate error, say); the upgrade fails with that.
      secure.once('close', onFailure);
      return () => {
        secure.off('secureConnect', onSecure);
        secure.off('close', onFailure);
      };
    });
  }

  /** Marks the connection as closing after QUIT: the server's close is then expected. */
  markQuitting(): void {
    this.quitting = true;
  }

  /** Half-closes the socket gracefully (after QUIT); the server's close completes the streams. */
  end(): void {
    if (this.ended !== undefined) return;
    this.quitting = true;
    this.info('closing');
    this.socket.end();
    // A server that never closes its side must not keep the socket (and the process) alive.
    const fallback = setTimeout(() => this.socket.destroy(), END_GRACE_MS);
    fallback.unref();
    this.socket.once('close', () => clearTimeout(fallback));
  }

  /** Closes the socket at once. Pending requests error with `err` (or SMTPServerDisconnected). */
  destroy(err?: unknown): void {
    if (this.ended === undefined) {
      this.finish(err ?? new SMTPServerDisconnected('Connection closed by the client'));
    }
    this.socket.destroy();
  }

  private send(group: readonly Outgoing[], slot: Slot, replies: number): void {
    if (this.ended !== undefined) {
      slot.fail(this.disconnectedError());
      return;
    }
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
    if (wasIdle) this.armHeadTimer();
    this.socket.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  }

  private onData = (chunk: Buffer): void => {
    if (this.upgrading) {
      // RFC 3207 §4.2 / CVE-2011-0411: nothing may arrive between the 220 and the handshake.
      this.destroy(new SMTPProtocolError('Data received after the STARTTLS 220 reply (possible injection); aborting'));
      return;
    }
    let replies: Reply[];
    try {
      replies = this.parser.push(chunk);
    } catch (err) {
      this.destroy(err);
      return;
    }
    for (let i = 0; i < replies.length && this.ended === undefined; i++) {
      this.dispatch(replies[i], i < replies.length - 1 || this.parser.buffered > 0);
    }
  };

  private dispatch(reply: Reply, moreBytes: boolean): void {
    for (const line of reply.lines) this.emitDebug('receive', `${reply.code} ${line}`);
    const slot = this.pending.shift();
    // RFC 5321 §4.5.3.2: each reply has its own timer, running from when it is the one awaited.
    // A transaction stacked behind another's final dot does not pay for that wait.
    this.armHeadTimer();
    if (!slot) {
      // RFC 5321 §3.8: a server may announce its shutdown with an unsolicited 421.
      this.destroy(
        reply.code === 421
          ? new SMTPServerDisconnected(`Server closing the connection: ${reply.code} ${reply.message}`)
          : new SMTPProtocolError(`Unsolicited reply from the server: ${reply.code} ${reply.message}`, { reply }),
      );
      return;
    }
    if (slot.upgrade && reply.code === 220) {
      if (moreBytes) {
        const err = new SMTPProtocolError('Data received after the STARTTLS 220 reply (possible injection); aborting');
        this.destroy(err);
        return;
      }
      this.upgrading = true;
    }
    this.repliesSubject.next(reply);
    slot.deliver(reply);
  }

  private onError = (err: Error): void => {
    this.finish(new SMTPServerDisconnected(`Connection error: ${err.message}`, { cause: err }));
  };

  private onClose = (): void => {
    this.finish(this.quitting && this.pending.length === 0 ? null : this.disconnectedError());
    this.info('closed');
    this.closedSubject.next();
    this.closedSubject.complete();
    this.debugSubject.complete();
  };

  /** Ends the streams once: `null` for a graceful close, else the error every pending request gets. */
  private finish(err: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = err;
    clearTimeout(this.headTimer);
    const slots = this.pending.splice(0);
    const failure = err ?? this.disconnectedError();
    for (const slot of slots) slot.fail(failure);
    this.greetingSubject.error(failure);
    if (err === null) this.repliesSubject.complete();
    else this.repliesSubject.error(err);
  }

  /**
   * Starts the timer of the reply awaited now, if its request set one. The Node timer is not
   * re-armed per reply, nor cleared when nothing is awaited (a bulk run reads thousands of replies
   * a second): it fires at the earliest deadline it was set for and, if the head's deadline
   * moved since, waits for the rest.
   */
  private armHeadTimer(): void {
    const timer = this.pending[0]?.timer;
    // Nothing awaited: a running timer is left to find that out (finish() clears it on close).
    if (!timer || this.ended !== undefined) return;
    this.headStep = timer;
    this.headDeadline = performance.now() + timer.ms;
    if (this.headTimer && this.headTimerDue <= this.headDeadline) return;
    clearTimeout(this.headTimer);
    this.scheduleHeadCheck(timer.ms);
  }

  private scheduleHeadCheck(ms: number): void {
    this.headTimerDue = performance.now() + ms;
    // Node fires a longer timeout after 1 ms; a longer deadline is checked again when this fires.
    this.headTimer = setTimeout(() => {
      this.headTimer = undefined;
      if (this.ended !== undefined || !this.pending[0]?.timer) return;
      const left = this.headDeadline - performance.now();
      if (left > 0) return this.scheduleHeadCheck(left);
      const { step, ms: limit } = this.headStep!;
      this.destroy(new SMTPTimeoutError(step, limit));
    }, Math.min(ms, MAX_TIMER_MS));
  }

  private disconnectedError(): SMTPServerDisconnected {
    if (this.ended instanceof SMTPServerDisconnected) return this.ended;
    return new SMTPServerDisconnected('Connection unexpectedly closed');
  }

  private assertOpen(): void {
    if (this.ended !== undefined) throw this.disconnectedError();
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
    const s = this.socket;
    return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : String(this.options.servername ?? 'socket');
  }

  private info(text: string): void {
    this.emitDebug('info', text);
  }

  private emitDebug(direction: DebugEvent['direction'], text: string): void {
    if (this.debugSubject.observed) this.debugSubject.next({ direction, text, time: Date.now() });
  }
}
