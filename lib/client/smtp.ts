import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { Observable, Subject, Subscription, concatMap, defer, filter, finalize, lastValueFrom, map, tap } from 'rxjs';
import { SMTPInvalidArgumentError, SMTPServerDisconnected } from '../errors';
import { ehlo$, sendEhlo$, sendHelo$ } from '../session/ehlo';
import { greeting$ } from '../session/greeting';
import { quit$ } from '../session/quit';
import { Session, Step, Timeouts, exchange$, hasExtension, newSession, resolveTimeouts } from '../session/session';
import { starttls$ } from '../session/starttls';
import { MailOptions, RcptOptions, Recipient, mailOptionsOf, rcptOptionsOf } from '../session/envelope';
import { data$, mail$, rcpt$ } from '../session/mail';
import { SendEvent, sendmail$ } from '../session/sendmail';
import { sendMessage$ } from '../session/send-message';
import { AuthOptions, LoginOptions, auth$, login$ } from '../session/authenticate';
import { AuthObject } from '../auth';
import { Body } from '../wire/body-source';
import { connect$ as openConnection } from '../transport/connect';
import { DebugEvent, formatDebugEvent } from '../transport/debug';
import { SMTP_PORT } from '../transport/options';
import { parseServerUrl } from '../transport/url';
import { command } from '../wire/command';
import { Reply } from '../wire/reply';

// Node releases before 20.4 lack Symbol.asyncDispose: TypeScript's recommended polyfill, so that the
// method below and the compiled form of `await using` (which looks the symbol up the same way) agree.
(Symbol as { asyncDispose?: symbol }).asyncDispose ??= Symbol.for('Symbol.asyncDispose');

/** Options of the smtplib-shaped classes. A constructor never does I/O. */
export interface SMTPOptions {
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  /** The name sent in EHLO/HELO/LHLO; default: the FQDN when it has a dot, else `[address]`. */
  readonly localHostname?: string | undefined;
  /**
   * One timeout for connecting and for every reply, in **milliseconds** (smtplib's `timeout`
   * counts seconds: `timeout: 30` waits 30 ms). The constructor refuses 0, negative, NaN or
   * infinite values with `SMTPInvalidArgumentError`, as smtplib raises ValueError for 0.
   */
  readonly timeout?: number | undefined;
  /** Per-step reply timeouts in milliseconds (RFC 5321 §4.5.3.2 defaults); each positive and finite. */
  readonly timeouts?: Partial<Timeouts> | undefined;
  /** Bind the local end of the socket. */
  readonly sourceAddress?: { readonly host?: string; readonly port?: number } | undefined;
  /** Node TLS options for implicit TLS and STARTTLS. Certificates are verified by default. */
  readonly tls?: TlsConnectionOptions | undefined;
  /** Let `login$`/`auth$` send credentials without TLS. Default false. */
  readonly allowPlaintextAuth?: boolean | undefined;
  /**
   * Where `setDebuglevel(1|2)` prints the dialogue, one line per event: default `process.stderr`,
   * as smtplib prints to `sys.stderr`; `null` prints nothing (`debug$` still emits).
   */
  readonly debugStream?: DebugSink | null | undefined;
}

/** Something debug lines can be written to: `process.stderr`, a file stream, a test's buffer. */
export interface DebugSink {
  /** Takes one line, newline included. */
  write(line: string): unknown;
}

/** A `debug$` event as the facade shows it: level 2 adds the time. */
export interface DebugMessage {
  readonly direction: DebugEvent['direction'];
  readonly text: string;
  /** `Date.now()` at the event; only at debug level 2. */
  readonly time?: number;
  /** The event as one printable line (smtplib's format). */
  readonly line: string;
}

/**
 * An SMTP client shaped like Python's `smtplib.SMTP`, method for method, with
 * every method returning a cold Observable (`$`): nothing is sent until it is
 * subscribed; it emits its result and completes. State (`ehloResp`,
 * `esmtpFeatures`, …) is kept between calls as smtplib keeps it.
 *
 * The behaviour lives in `lib/session/`; this class only holds the current
 * `Session` snapshot between calls.
 *
 * @example
 * const smtp = new SMTP({ host: 'mail.example.com', tls: { ca } });
 * await lastValueFrom(smtp.connect$());
 * await lastValueFrom(smtp.starttls$());
 * await lastValueFrom(smtp.quit$());
 *
 * @example
 * // Python's `with SMTP(…) as smtp:`: QUIT (or close) however the block ends.
 * await using smtp = new SMTP({ host: 'mail.example.com' });
 * await lastValueFrom(smtp.connect$());
 * await lastValueFrom(smtp.sendmail$(from, to, body));
 */
export class SMTP {
  /** smtplib's `SMTP_PORT`. */
  static readonly defaultPort: number = SMTP_PORT;

  /**
   * A client for a server URL: `SMTP_SSL` for `smtps://`, `LMTP` for `lmtp://` and `lmtp+unix://`, else `SMTP`
   * (with `smtp+starttls://` call `starttls$()` yourself, as smtplib does). The facade logs in only when told
   * (`login$`), so a URL with `user:password@` throws `SMTPInvalidArgumentError`: use `session$(url)` or `SMTPPool`.
   */
  static fromUrl(url: string, options: SMTPOptions = {}): SMTP {
    const { host, port, path, secure, lmtp, auth } = parseServerUrl(url);
    if (auth) throw new SMTPInvalidArgumentError('SMTP.fromUrl: the facade does not log in by itself; call login$()');
    // Required here, not at the top: both subclasses extend SMTP, so they load after it.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const Client: typeof SMTP = secure
      ? (require('./smtp-ssl') as typeof import('./smtp-ssl')).SMTP_SSL
      : lmtp
        ? (require('./lmtp') as typeof import('./lmtp')).LMTP
        : SMTP;
    /* eslint-enable @typescript-eslint/no-require-imports */
    return new Client({ ...options, host: path ?? host, port });
  }

  protected readonly options: SMTPOptions;
  protected readonly secure: boolean = false;
  protected readonly lmtp: boolean = false;
  private state: Session | null = null;
  private link: Subscription | undefined;
  private debugLevel: 0 | 1 | 2 = 0;
  /** Recipients accepted since the last MAIL: LMTP answers the final dot once for each. */
  private accepted = 0;
  private readonly debugSubject = new Subject<DebugMessage>();
  private readonly timeouts: Timeouts;

  /** Wire events while the debug level is above 0 (also printed to `debugStream`); AUTH payloads are redacted. */
  readonly debug$: Observable<DebugMessage> = this.debugSubject.asObservable();

  /** @throws SMTPInvalidArgumentError for a timeout that is not a positive, finite number of ms. */
  constructor(options: SMTPOptions = {}) {
    this.options = options;
    this.timeouts = resolveTimeouts(options.timeout, options.timeouts);
  }

  /** The HELO reply text, once HELO was sent (smtplib's `helo_resp`). */
  get heloResp(): string | null {
    return this.state?.heloResp ?? null;
  }

  /** The EHLO reply text, once EHLO was sent (smtplib's `ehlo_resp`). */
  get ehloResp(): string | null {
    return this.state?.ehloResp ?? null;
  }

  /** Whether the server answered EHLO with 250. */
  get doesEsmtp(): boolean {
    return this.state?.doesEsmtp ?? false;
  }

  /** EHLO keywords (lower-case) and their parameters, parsed as smtplib does. */
  get esmtpFeatures(): Readonly<Record<string, string>> {
    return this.state?.esmtpFeatures ?? {};
  }

  /** The current session snapshot, for the reactive API (`null` before `connect$`). */
  get session(): Session | null {
    return this.state;
  }

  /** smtplib's `set_debuglevel`: 0 off, 1 wire events, 2 with timestamps; printed to `debugStream` (stderr). */
  setDebuglevel(level: 0 | 1 | 2): void {
    this.debugLevel = level;
  }

  /**
   * Connects and reads the greeting; a non-220 greeting errors with
   * `SMTPConnectError`. `"host:port"` is split as smtplib does. Connecting
   * again closes the previous connection.
   *
   * @return the greeting.
   */
  connect$(host?: string, port?: number): Observable<Reply> {
    return new Observable<Reply>((subscriber) => {
      this.close();
      let greeted = false;
      const link = openConnection({
        ...this.options,
        host: host ?? this.options.host,
        port: port ?? (host === undefined ? this.options.port : undefined),
        secure: this.secure,
        lmtp: this.lmtp,
        defaultPort: (this.constructor as typeof SMTP).defaultPort,
        connectTimeout: this.options.timeout,
        replyTimeout: this.timeouts.command,
      })
        .pipe(
          tap((connection) => this.watch(connection.debug$)),
          map((connection) => newSession(connection, { ...this.options, lmtp: this.lmtp })),
          concatMap((session) => greeting$(session)),
        )
        .subscribe({
          next: (step) => {
            greeted = true;
            this.state = step.session;
            subscriber.next(step.reply);
            subscriber.complete();
          },
          // After the greeting, a dropped connection shows up on the next command instead.
          error: (err: unknown) => greeted || subscriber.error(err),
        });
      this.link = link;
      return () => {
        if (!greeted) this.close();
      };
    });
  }

  /** smtplib's `helo()`: sends HELO; a refusal is the emitted reply, not an error. */
  helo$(name?: string): Observable<Reply> {
    return this.step$((s) => sendHelo$(s, name));
  }

  /** smtplib's `ehlo()` (LHLO for LMTP): sends EHLO and records the capabilities on 250. */
  ehlo$(name?: string): Observable<Reply> {
    return this.step$((s) => sendEhlo$(s, name));
  }

  /** smtplib's `ehlo_or_helo_if_needed()`: EHLO, then HELO, unless done; both refused → `SMTPHeloError`. */
  ehloOrHeloIfNeeded$(): Observable<Reply> {
    return this.step$((s) => ehlo$(s));
  }

  /** smtplib's `has_extn()`: whether the server advertised the extension (case-insensitive). */
  hasExtn(name: string): boolean {
    return this.state !== null && hasExtension(this.state, name);
  }

  /** smtplib's `verify()`: VRFY with the address part of `address`. */
  verify$(address: string): Observable<Reply> {
    return this.docmd$('VRFY', addressOnly(address));
  }

  /** smtplib's `expn()`: EXPN with the address part of `address`. */
  expn$(address: string): Observable<Reply> {
    return this.docmd$('EXPN', addressOnly(address));
  }

  /** smtplib's `help()`: emits the text of the HELP reply. */
  help$(args?: string): Observable<string> {
    return this.docmd$('HELP', args).pipe(map((reply) => reply.message));
  }

  /** smtplib's `noop()`. */
  noop$(): Observable<Reply> {
    return this.docmd$('NOOP');
  }

  /** smtplib's `rset()`. */
  rset$(): Observable<Reply> {
    return this.docmd$('RSET');
  }

  /**
   * smtplib's `docmd()`: sends `cmd args` and emits the reply, whatever its code.
   * `docmd$('XFOO', 'a b')` and `docmd$('XFOO a b')` both send `XFOO a b`; CR, LF and NUL
   * are refused before anything is written.
   */
  docmd$(cmd: string, args = ''): Observable<Reply> {
    return this.step$((s) => {
      const space = cmd.indexOf(' ');
      const verb = space < 0 ? cmd : cmd.slice(0, space);
      const line = [space < 0 ? '' : cmd.slice(space + 1), args].filter((part) => part !== '');
      return exchange$(s, command(verb, line)).pipe(map((reply) => ({ session: s, reply })));
    });
  }

  /**
   * smtplib's `starttls()`: EHLO if needed, STARTTLS (refused when not
   * advertised), TLS handshake with certificate verification, then every
   * capability is forgotten; the next command that needs them sends EHLO again.
   */
  starttls$(options: { tls?: TlsConnectionOptions } = {}): Observable<Reply> {
    return this.step$((s) => ehlo$(s).pipe(concatMap((step) => starttls$(step.session, options.tls))));
  }

  /**
   * smtplib's `login()`: EHLO if needed, then the offered mechanisms in
   * preference order (SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN) until
   * one succeeds; the last `SMTPAuthenticationError` when none does. Refuses
   * to send credentials without TLS unless `allowPlaintextAuth` is set.
   */
  login$(user: string, password: string, options: LoginOptions = {}): Observable<Reply> {
    return this.step$((s) => login$(s, user, password, this.authOptions(options)));
  }

  /**
   * smtplib's `auth()`: one exchange with `mechanism`, answered by `authobject`
   * (called with null for the initial response, then with each decoded
   * challenge), e.g. `auth$('PLAIN', authPlain(user, password))`.
   */
  auth$(mechanism: string, authobject: AuthObject, options: AuthOptions = {}): Observable<Reply> {
    return this.step$((s) => auth$(s, { name: mechanism, authobject }, this.authOptions(options)));
  }

  /** smtplib's `mail()`: `MAIL FROM`, options sent to ESMTP servers only; emits the reply whatever its code. */
  mail$(sender: string, options: readonly string[] = []): Observable<Reply> {
    return this.step$((s) => mail$(s, sender, options)).pipe(tap(() => (this.accepted = 0)));
  }

  /** smtplib's `rcpt()`: `RCPT TO`; emits the reply whatever its code. */
  rcpt$(recipient: string, options: readonly string[] = []): Observable<Reply> {
    return this.step$((s) => rcpt$(s, recipient, options)).pipe(
      tap((reply) => (this.accepted += reply.code === 250 || reply.code === 251 ? 1 : 0)),
    );
  }

  /**
   * smtplib's `data()`: DATA, the body (any `Body`: string, bytes, stream), the
   * final dot; a reply other than 354 to DATA is `SMTPDataError`. Emits the
   * final reply (for LMTP, the last of one per accepted recipient).
   */
  data$(body: Body): Observable<Reply> {
    return this.step$((s) => data$(s, body, this.lmtp ? this.accepted : 1));
  }

  /**
   * smtplib's `sendmail()`, streamed: EHLO/HELO if needed, then the
   * transaction. Emits a `recipient` event per RCPT reply as it arrives,
   * `progress` while the body is written, `delivery` per recipient for LMTP,
   * and finally `sent` with smtplib's `refused` map. Options are smtplib's
   * lists of strings or the structured `MailOptions`/`RcptOptions`.
   */
  sendmail$(
    from: string,
    to: string | readonly (string | Recipient)[],
    body: Body,
    mailOptions: readonly string[] | MailOptions = [],
    rcptOptions: readonly string[] | RcptOptions = [],
  ): Observable<SendEvent> {
    return this.step$((s) => ehlo$(s)).pipe(
      concatMap(() =>
        sendmail$(this.requireSession(), from, to, body, mailOptionsOf(mailOptions), rcptOptionsOf(rcptOptions)),
      ),
    );
  }

  /**
   * smtplib's `send_message()`: the envelope from the message's own headers
   * (Sender or From; every To, Cc and Bcc; the Resent-* block when there is
   * exactly one), Bcc and Resent-Bcc removed from what is sent; `fromAddr` and
   * `toAddrs` override the headers. Only the header block is buffered; the body
   * streams. Emits the events of `sendmail$`.
   */
  sendMessage$(
    message: Body,
    fromAddr?: string,
    toAddrs?: string | readonly string[],
    mailOptions: readonly string[] | MailOptions = [],
    rcptOptions: readonly string[] | RcptOptions = [],
  ): Observable<SendEvent> {
    return this.step$((s) => ehlo$(s)).pipe(
      concatMap(() => sendMessage$(this.requireSession(), message, fromAddr, toAddrs, mailOptions, rcptOptions)),
    );
  }

  /** smtplib's `quit()`: QUIT, then close; capabilities are forgotten. */
  quit$(): Observable<Reply> {
    // The socket closes by itself after the 221 (quit$ ends our side); only the link is dropped.
    return this.step$((s) => quit$(s)).pipe(finalize(() => (this.link = undefined)));
  }

  /** smtplib's `close()`: closes the connection at once, without QUIT. */
  close(): void {
    const link = this.link;
    this.link = undefined;
    this.state?.connection.destroy();
    link?.unsubscribe();
  }

  /**
   * `await using` (Python's `with`): QUIT when connected and idle, and close at once when a
   * command is still owed its reply, QUIT fails, or the connection is already gone. Never throws:
   * it runs while an error may be propagating out of the block.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    const connection = this.link ? this.state?.connection : undefined;
    if (connection?.open && connection.inFlight === 0) {
      // After the 221 our side is already ending gracefully (quit$); only a failed QUIT needs close().
      const quitted = await lastValueFrom(this.quit$()).then(
        () => true,
        () => false,
      );
      if (quitted) return;
    }
    this.close();
  }

  private authOptions<T extends AuthOptions>(options: T): T {
    return { allowPlaintextAuth: this.options.allowPlaintextAuth, ...options };
  }

  /**
   * Runs a session step on the current snapshot and keeps the new one, if the step made one.
   * A step that learnt nothing (NOOP, VRFY, …) hands back the snapshot it got: it must not
   * overwrite what a concurrent step learnt meanwhile (a `noop$()` keep-alive beside `starttls$()`
   * would otherwise restore the capabilities heard in plaintext, RFC 3207 §4.2).
   * Before `connect$` (or after `close()`): `SMTPServerDisconnected`, as smtplib.
   */
  protected step$(run: (session: Session) => Observable<Step>): Observable<Reply> {
    return defer(() => {
      const before = this.requireSession();
      return run(before).pipe(
        tap((step) => {
          if (step.session !== before) this.state = step.session;
        }),
        map((step) => step.reply),
      );
    });
  }

  /** The current session, or `SMTPServerDisconnected` when there is no open connection. */
  protected requireSession(): Session {
    if (!this.state || !this.link) throw new SMTPServerDisconnected('please run connect() first');
    return this.state;
  }

  private watch(events$: Observable<DebugEvent>): void {
    events$.pipe(filter(() => this.debugLevel > 0)).subscribe((event) => {
      const level = this.debugLevel as 1 | 2;
      const message: DebugMessage = {
        direction: event.direction,
        text: event.text,
        ...(level === 2 ? { time: event.time } : {}),
        line: formatDebugEvent(event, level),
      };
      const sink = this.options.debugStream === undefined ? process.stderr : this.options.debugStream;
      sink?.write(`${message.line}\n`);
      this.debugSubject.next(message);
    });
  }
}

/** smtplib's `_addr_only`: the address of `"Name <addr>"`, or the string itself. */
function addressOnly(address: string): string {
  return /<([^<>]*)>\s*$/.exec(address)?.[1] ?? address.trim();
}
