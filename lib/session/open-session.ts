import {
  EMPTY,
  Observable,
  OperatorFunction,
  catchError,
  concat,
  defer,
  identity,
  ignoreElements,
  map,
  switchMap,
  tap,
} from 'rxjs';
import { connect$ } from '../transport/connect';
import { DebugEvent } from '../transport/debug';
import { ConnectOptions } from '../transport/options';
import { ehlo } from './ehlo';
import { greeting } from './greeting';
import { Session, SessionOptions, newSession, resolveTimeouts } from './session';
import { starttls } from './starttls';
import { quit$ } from './quit';
import { Credentials, authenticate } from './authenticate';
import { parseServerUrl } from '../transport/url';
import { Logger, describeError } from '../transport/logger';
import { SmtpConnection } from '../transport/connection';

/** How a session uses STARTTLS: always (fail without it), when offered, or never. */
export type StartTlsPolicy = 'required' | 'opportunistic' | 'never';

export interface SessionConfig extends ConnectOptions, SessionOptions {
  /**
   * A server URL (`smtp://`, `smtps://`, `smtp+starttls://`, `lmtp://`, `lmtp+unix:///path`, with an
   * optional `user:password@`): sets host, port, path, secure, lmtp, starttls and auth. A field
   * given beside it takes precedence over what the URL says.
   */
  readonly url?: string | undefined;
  /**
   * Default `opportunistic` on a plaintext connection: upgrade when the server
   * offers STARTTLS (certificates verified). Ignored with implicit TLS.
   */
  readonly starttls?: StartTlsPolicy | undefined;
  /** Credentials: AUTH runs after STARTTLS, choosing from the capabilities the server listed over TLS. */
  readonly auth?: Credentials | undefined;
  /** Called with every wire event of the connection from the greeting on (AUTH payloads redacted). */
  readonly debug?: ((event: DebugEvent) => void) | undefined;
  /**
   * pino-style logger (`debug/info/warn/error(fields, text)`; `console` fits): the session ready
   * (info: server, TLS, extensions) or failed (warn: its `code`), the connection closed (info),
   * and the dialogue line by line at debug, AUTH payloads redacted.
   */
  readonly logger?: Logger | undefined;
  /** Further steps run after the greeting, TLS and AUTH. */
  readonly steps?: readonly OperatorFunction<Session, Session>[] | undefined;
  /**
   * For Promise users (`lastValueFrom`): aborting ends the session as unsubscribing does (QUIT
   * when idle, else the socket is destroyed) and errors the stream with `signal.reason`, as
   * Node's own APIs reject. An already aborted signal errors it before anything is connected.
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * The whole session pipeline as one cold Observable: connect, read the
 * greeting, EHLO (HELO fallback), STARTTLS and EHLO again, then `steps`.
 * Emits the ready session once.
 *
 * ```
 * session$(c):  --connect--220--EHLO--STARTTLS--EHLO--s------   (ready: s)
 * unsubscribe:                                          ^ QUIT, then close
 * ```
 *
 * Unsubscribing sends QUIT in turn (after a transaction still writing, never inside
 * its body), under the command deadline, and closes our side once it is answered;
 * before the session is ready it destroys the socket.
 *
 * @example
 * session$('smtps://me%40example.com:s3cret@mail.example.com').pipe(switchMap((s) => sendmail$(s, …)));
 * @param config where to connect and how to greet, or a server URL (see `SessionConfig.url`).
 * @return a cold Observable of the ready `Session`; a malformed URL, or a timeout that is not a
 *   positive, finite number of ms, errors it with `SMTPInvalidArgumentError` before anything is connected.
 */
export function session$(config: SessionConfig | string = {}): Observable<Session> {
  // A bad URL or timeout is an error of the stream (before any I/O), where SMTPPool's connections see it too.
  return defer(() => openSession$(resolveConfig(config)));
}

function openSession$(config: SessionConfig): Observable<Session> {
  const policy = config.secure ? 'never' : (config.starttls ?? 'opportunistic');
  // A reply no step names (a fire-and-forget command, say) still has the session's deadline.
  const replyTimeout = resolveTimeouts(config.timeout, config.timeouts).command;
  const greeted$ = connect$({ ...config, replyTimeout: config.replyTimeout ?? replyTimeout }).pipe(
    tap((connection) => {
      if (config.debug) connection.debug$.subscribe(config.debug);
      if (config.logger) logConnection(connection, config.logger);
    }),
    map((connection) => newSession(connection, config)),
    greeting(),
    ehlo(),
    policy === 'never' ? identity : starttls({ required: policy === 'required' }),
    config.auth ? authenticate(config.auth) : identity,
  );
  const pipeline$ = (config.steps ?? []).reduce((session$, step) => session$.pipe(step), greeted$);
  return new Observable<Session>((subscriber) => {
    let current: Session | undefined;
    const { signal } = config;
    if (signal?.aborted) return subscriber.error(signal.reason);
    // The error tears this subscription down: the goodbye below runs as for an unsubscribe.
    const onAbort = (): void => subscriber.error(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const subscription = pipeline$.subscribe({
      next: (session) => {
        current = session;
        config.logger?.info(readyFields(session, config), 'SMTP session ready');
        subscriber.next(session);
      },
      error: (err: unknown) => {
        config.logger?.warn(
          { event: 'session-failed', host: config.path ?? config.host, port: config.port, ...describeError(err) },
          'SMTP session failed',
        );
        subscriber.error(err);
      },
      complete: () => subscriber.complete(),
    });
    return () => {
      signal?.removeEventListener('abort', onAbort);
      if (current) sayGoodbye(current);
      subscription.unsubscribe();
    };
  });
}

/** The dialogue at debug (unless the logger says debug is off: then it is not even collected), and the close. */
function logConnection(connection: SmtpConnection, logger: Logger): void {
  if (logger.isLevelEnabled?.('debug') !== false) {
    connection.debug$.subscribe(({ direction, text }) => logger.debug({ event: 'wire', direction, text }, 'SMTP wire'));
  }
  connection.closed$.subscribe(() => logger.info({ event: 'session-closed' }, 'SMTP connection closed'));
}

function readyFields(session: Session, config: SessionConfig): object {
  return {
    event: 'session-ready',
    host: config.path ?? config.host,
    port: config.port,
    tls: session.connection.secure,
    esmtp: session.doesEsmtp,
    extensions: Object.keys(session.esmtpFeatures),
  };
}

/**
 * The config with its `url` spelled out as fields; the fields given beside it win.
 *
 * @throws SMTPInvalidArgumentError for a malformed URL (its password never in the message).
 */
export function resolveConfig(config: SessionConfig | string): SessionConfig {
  if (typeof config === 'string') return parseServerUrl(config);
  if (config.url === undefined) return config;
  const defined = Object.fromEntries(Object.entries(config).filter(([, value]) => value !== undefined));
  return { ...parseServerUrl(config.url), ...defined };
}

/**
 * QUIT without waiting for the reply when the connection is idle; with anything under way (a
 * transaction writing its body, a reply owed) the socket is destroyed instead: its state is
 * unknown, and unsubscribing must release it now, not after the last deadline. Never a QUIT
 * inside a body.
 */
function sayGoodbye({ connection, timeouts }: Session): void {
  connection.closeWhenIdle(timeouts.command);
}

/**
 * Runs `work` on a ready session, then says QUIT and completes once the server
 * closed: the usual shape of a job that sends and is done.
 *
 * ```
 * withSession$(c, s => sendmail$(s, …)):  --r--r--p--sent--(QUIT→221)|
 * ```
 *
 * Unsubscribing early behaves as `session$` does (QUIT when idle, else destroy).
 *
 * @param config where to connect and how to greet, or a server URL.
 * @param work what to do with the session; its values are passed through.
 * @return the work's values, completing after QUIT.
 */
export function withSession$<T>(
  config: SessionConfig | string,
  work: (session: Session) => Observable<T>,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    // Once the work is done, the job is: a connection that breaks during QUIT (a server that
    // closes first, a 421 after the last reply) changes nothing the work reported.
    let workDone = false;
    const goodbye$ = (session: Session): Observable<never> =>
      defer(() => {
        workDone = true;
        return quit$(session).pipe(
          ignoreElements(),
          catchError(() => EMPTY),
        );
      });
    return session$(config)
      .pipe(switchMap((session) => concat(work(session), goodbye$(session))))
      .subscribe({
        next: (value) => subscriber.next(value),
        error: (err: unknown) => (workDone ? subscriber.complete() : subscriber.error(err)),
        complete: () => subscriber.complete(),
      });
  });
}
