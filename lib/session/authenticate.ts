import {
  Observable,
  OperatorFunction,
  catchError,
  concatMap,
  defer,
  finalize,
  map,
  of,
  take,
  throwError,
  timeout,
} from 'rxjs';
import {
  SMTPAuthenticationError,
  SMTPException,
  SMTPInsecureAuthError,
  SMTPNotSupportedError,
  SMTPTimeoutError,
  hasCode,
} from '../errors';
import {
  AuthObject,
  MECHANISMS,
  SaslMechanism,
  fromAuthObject,
  loginMechanism,
  oauthbearerMechanism,
  pickMechanisms,
  preferenceOrder,
  xoauth2Mechanism,
} from '../auth';
import { authMechanisms } from '../wire/capabilities';
import { Command, checkArgument } from '../wire/command';
import { Turn } from '../transport/connection';
import { Reply } from '../wire/reply';
import { ehlo$ } from './ehlo';
import { Session, Step, hasExtension } from './session';

/** smtplib's `_MAXCHALLENGE`: more challenges than this is a server looping. */
const MAX_CHALLENGES = 5;

/** How an AUTH exchange may go, for every kind of credentials. */
export interface AuthOptions {
  /** Send the initial response with the AUTH command (RFC 4954 §4); default true, as smtplib. */
  readonly initialResponseOk?: boolean;
  /** Send credentials over a connection without TLS. Default false: use STARTTLS or SMTP_SSL. */
  readonly allowPlaintextAuth?: boolean;
}

/** Options of `login$`: those of every AUTH exchange, and which password mechanisms to try. */
export interface LoginOptions extends AuthOptions {
  /** The mechanisms to try, in order (names compare case-insensitively); pin one by naming only it. */
  readonly mechanisms?: readonly string[];
}

/** Password credentials for `login$` and the `authenticate` step. */
export interface PasswordAuth extends LoginOptions {
  readonly user: string;
  readonly password: string;
}

/** An OAuth 2.0 bearer token, or a stream of them (the latest one is used at each login). */
export interface OAuthAuth extends AuthOptions {
  readonly user: string;
  readonly token: string | Observable<string>;
  /** Default `XOAUTH2` when offered, else `OAUTHBEARER` (RFC 7628). */
  readonly mechanism?: 'XOAUTH2' | 'OAUTHBEARER';
}

/** What the `authenticate` step and `SessionConfig.auth` take: a password or an OAuth token. */
export type Credentials = PasswordAuth | OAuthAuth;

/**
 * smtplib's `auth()`: runs one SASL exchange (RFC 4954). With
 * `initialResponseOk` the first response goes with AUTH (an empty one as `=`);
 * each 334 challenge is decoded and answered; more than five challenges is a
 * server loop. 235 and 503 ("already authenticated") are success; anything
 * else is `SMTPAuthenticationError`. When the mechanism itself fails (a SCRAM
 * server signature that does not verify, say), the exchange is cancelled with
 * `*` and its error is raised.
 *
 * ```
 * auth$(s, PLAIN):  --AUTH PLAIN AHUAcA==→235--{session}|
 * ```
 *
 * @param session a session that greeted the server.
 * @param mechanism a SASL mechanism (see `lib/auth`), or a name and an smtplib authobject.
 * @return the session, marked as authenticated, and the final reply.
 */
export function auth$(
  session: Session,
  mechanism: SaslMechanism | { readonly name: string; readonly authobject: AuthObject },
  options: AuthOptions = {},
): Observable<Step> {
  return defer(() => {
    checkTransport(session, options);
    const sasl = 'authobject' in mechanism ? fromAuthObject(mechanism.name, mechanism.authobject) : mechanism;
    return new Exchange(session, sasl, options.initialResponseOk ?? true).run$();
  });
}

/**
 * smtplib's `login()`: EHLO if needed; `SMTPNotSupportedError` without AUTH;
 * then each offered mechanism in preference order (SCRAM-SHA-256, SCRAM-SHA-1,
 * CRAM-MD5, PLAIN, LOGIN), moving on after an `SMTPAuthenticationError` and
 * raising the last one when all fail. Mechanism names compare case-insensitively
 * (smtplib compares them as the server wrote them).
 */
export function login$(session: Session, user: string, password: string, options: LoginOptions = {}): Observable<Step> {
  return ehlo$(session).pipe(
    concatMap(({ session: greeted }) => {
      checkTransport(greeted, options);
      if (!hasExtension(greeted, 'auth')) {
        throw new SMTPNotSupportedError('SMTP AUTH extension not supported by server.');
      }
      const names = pickMechanisms(authMechanisms(greeted.esmtpFeatures), options.mechanisms ?? preferenceOrder);
      if (names.length === 0) throw new SMTPException('No suitable authentication method found.');
      const credentials = { user, password };
      const attempt$ = (i: number, last?: unknown): Observable<Step> => {
        const name = names[i];
        const factory = name === undefined ? undefined : MECHANISMS[name];
        // Past the last name (pickMechanisms keeps only names with a factory): the last refusal stands.
        if (name === undefined || factory === undefined) return throwError(() => last);
        // smtplib's auth_login sends the user name as the initial response when it may.
        const sasl =
          name === 'LOGIN'
            ? loginMechanism(credentials, { initialResponse: options.initialResponseOk ?? true })
            : factory(credentials);
        return auth$(greeted, sasl, options).pipe(
          catchError((err: unknown) =>
            hasCode(err, 'ERR_SMTP_AUTHENTICATION') && greeted.connection.open
              ? attempt$(i + 1, err)
              : throwError(() => err),
          ),
        );
      };
      return attempt$(0);
    }),
  );
}

/** XOAUTH2 or OAUTHBEARER with a token, or the latest token of a stream (so refresh is a stream). */
export function oauth$(session: Session, auth: OAuthAuth): Observable<Step> {
  return ehlo$(session).pipe(
    concatMap(({ session: greeted }) => {
      const offered = authMechanisms(greeted.esmtpFeatures);
      const name =
        auth.mechanism ?? (offered.includes('XOAUTH2') || !offered.includes('OAUTHBEARER') ? 'XOAUTH2' : 'OAUTHBEARER');
      // A token stream that never emits must not hold the session forever: it has the command deadline.
      const token$ =
        typeof auth.token === 'string'
          ? of(auth.token)
          : auth.token.pipe(
              take(1),
              timeout({
                first: greeted.timeouts.command,
                with: () => throwError(() => new SMTPTimeoutError('token', greeted.timeouts.command)),
              }),
            );
      return token$.pipe(
        concatMap((accessToken) => {
          const sasl =
            name === 'XOAUTH2'
              ? xoauth2Mechanism({ user: auth.user, accessToken })
              : oauthbearerMechanism({ user: auth.user, accessToken, host: greeted.connection.servername });
          return auth$(greeted, sasl, auth);
        }),
      );
    }),
  );
}

/** Authenticates with whatever the credentials are: password (`login$`) or OAuth token (`oauth$`). */
export function authenticate$(session: Session, credentials: Credentials): Observable<Step> {
  return 'password' in credentials
    ? login$(session, credentials.user, credentials.password, credentials)
    : oauth$(session, credentials);
}

/** The AUTH step as an operator, for `session$` pipelines. */
export function authenticate(credentials: Credentials): OperatorFunction<Session, Session> {
  return concatMap((session: Session) => authenticate$(session, credentials).pipe(map((step) => step.session)));
}

/** Credentials never cross a plaintext connection unless the caller said so. */
function checkTransport(session: Session, options: AuthOptions): void {
  if (!session.connection.secure && !options.allowPlaintextAuth) throw new SMTPInsecureAuthError();
}

/** One SASL exchange on the wire. */
class Exchange {
  private challenges = 0;
  private challenged = false;
  /** AUTH is written and the server has not ended the exchange: it waits for a response. */
  private open = false;

  constructor(
    private readonly session: Session,
    private readonly mechanism: SaslMechanism,
    private readonly initialResponseOk: boolean,
  ) {}

  /** Every response sent so far, base64 and decoded: a server that echoes one must not leak it. */
  private readonly secrets: string[] = [];

  /** The whole exchange holds one turn: no other command may land between a challenge and its answer. */
  run$(): Observable<Step> {
    return this.session.connection.withTurn$((turn) => {
      const initial = this.initialResponseOk ? this.mechanism.initialResponse() : null;
      const name = this.mechanism.name;
      const line = initial === null ? `AUTH ${name}` : `AUTH ${name} ${this.encodeSecret(initial) || '='}`;
      if (initial !== null) this.challenges = 1;
      // The mechanism name stays visible in debug$; the response never does.
      const cmd: Command = {
        verb: 'AUTH',
        line: checkArgument(line, 'AUTH command'),
        debugText: initial === null ? line : `AUTH ${name} ****`,
      };
      // (A connection that takes no more writes refuses AUTH itself: no exchange opens.)
      this.open = this.session.connection.writable;
      // Left (or failed) while the server waits for a response: whatever came next on this connection
      // would be read as one, so it closes instead.
      return this.send$(turn, cmd).pipe(finalize(() => this.open && this.session.connection.destroy()));
    });
  }

  private send$(turn: Turn, cmd: Command): Observable<Step> {
    const { timeouts } = this.session;
    return turn
      .request$(cmd, { step: 'auth', timeout: timeouts.command, secrets: this.secrets })
      .pipe(concatMap((reply) => this.onReply$(turn, reply)));
  }

  /** Encodes a response and remembers it (and its printable parts) as secrets. */
  private encodeSecret(response: Uint8Array | string): string {
    const encoded = encode(response);
    this.secrets.push(encoded);
    // PLAIN's user and password, LOGIN's password: a server may echo the decoded text too.
    for (const part of Buffer.from(response).toString('latin1').split('\0'))
      if (part.length >= 4) this.secrets.push(part);
    return encoded;
  }

  private onReply$(turn: Turn, reply: Reply): Observable<Step> {
    this.open = reply.code === 334;
    if (reply.code === 334) {
      this.challenged = true;
      this.challenges += 1;
      if (this.challenges > MAX_CHALLENGES) {
        throw new SMTPException(`Server AUTH mechanism infinite loop. Last response: ${reply.code} ${reply.message}`);
      }
      return this.answer$(turn, Buffer.from(reply.message, 'base64'));
    }
    // 503 "already authenticated" (smtplib's success) only answers the AUTH command itself: in the
    // middle of an exchange it would let a server skip what finish() verifies (SCRAM's signature).
    const alreadyAuthenticated = reply.code === 503 && !this.challenged;
    if (reply.code === 235 || alreadyAuthenticated) {
      if (reply.code === 235) this.mechanism.finish();
      return of({ session: { ...this.session, authenticatedAs: this.mechanism.name }, reply });
    }
    const serverError = (this.mechanism as { serverError?: string }).serverError;
    // Every response sent on this connection, not only this exchange's: a server may echo an earlier
    // mechanism's (PLAIN's, when LOGIN is tried next).
    const { connection } = this.session;
    const message = connection.redact(reply.message);
    const redacted: Reply = { ...reply, message, lines: reply.lines.map((l) => connection.redact(l)) };
    throw new SMTPAuthenticationError(reply.code, serverError ? `${message} (${serverError})` : message, {
      reply: redacted,
      command: `AUTH ${this.mechanism.name}`,
    });
  }

  private answer$(turn: Turn, challenge: Buffer): Observable<Step> {
    let response: string;
    try {
      response = this.encodeSecret(this.mechanism.respond(challenge));
    } catch (err) {
      // RFC 4954 §4: "*" cancels the exchange; the server answers 501, and the mechanism's reason wins.
      const cancel: Command = { verb: 'AUTH', line: '*', debugText: '*' };
      return turn.request$(cancel, { step: 'auth', timeout: this.session.timeouts.command }).pipe(
        concatMap((reply) => {
          this.open = reply.code === 334;
          return throwError(() => err);
        }),
      );
    }
    return this.send$(turn, { verb: 'AUTH', line: response, debugText: '****' });
  }
}

function encode(response: Uint8Array | string): string {
  return Buffer.from(response).toString('base64');
}
