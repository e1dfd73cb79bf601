/**
 * rx-smtp: an SMTP and LMTP client on RxJS. This module exports the public API only.
 *
 * @module rx-smtp
 */
export * from './errors';
export type { Reply, ReplyLimits } from './wire/reply';
export { parseReplies, ReplyParser, DEFAULT_REPLY_LIMITS } from './wire/reply';
export type { Command } from './wire/command';
export { command, checkArgument } from './wire/command';
export { parseCapabilities } from './wire/capabilities';

export { connect$ } from './transport/connect';
export { SmtpConnection } from './transport/connection';
export { lastRequest$ } from './transport/connection';
export type { ConnectionOptions, Outgoing, Payload, ReplyHandler, RequestOptions, Turn } from './transport/connection';
export type { TlsIdentity } from './transport/tls-upgrade';
export type { DebugEvent } from './transport/debug';
export type { ConnectOptions } from './transport/options';
export { SMTP_PORT, SMTP_SSL_PORT, LMTP_PORT } from './transport/options';
export { parseServerUrl } from './transport/url';
export type { ServerUrl } from './transport/url';

export type { Session, SessionOptions, Step, Timeouts } from './session/session';
export { DEFAULT_TIMEOUTS, hasExtension, newSession } from './session/session';
export { greeting, greeting$ } from './session/greeting';
export { ehlo, ehlo$, sendEhlo$, sendHelo$ } from './session/ehlo';
export { starttls, starttls$ } from './session/starttls';
export { quit, quit$ } from './session/quit';
export { session$, withSession$ } from './session/open-session';
export { verify$ } from './session/verify';
export type { VerifyReport } from './session/verify';
export { sendmail$ } from './session/sendmail';
export { sendMessage$ } from './session/send-message';
export type { SendEvent, SendHooks } from './session/sendmail';
export { mail$, rcpt$, data$ } from './session/mail';
export { planEnvelope } from './session/envelope';
export type { MailOptions, RcptOptions, Recipient, Envelope } from './session/envelope';
export type { Body, BodyFacts, ChunkOptions } from './wire/body-source';
export { encodeBody, BodyEncoder } from './wire/body-encoder';
export type { EncodeBodyOptions } from './wire/body-encoder';
export { toChunks$ } from './wire/body-source';
export { xtext } from './wire/xtext';
export type { SessionConfig, StartTlsPolicy } from './session/open-session';

export { auth$, authenticate, authenticate$, login$, oauth$ } from './session/authenticate';
export type { AuthOptions, Credentials, LoginOptions, OAuthAuth, PasswordAuth } from './session/authenticate';
export {
  MECHANISMS,
  authCramMd5,
  authLogin,
  authPlain,
  cramMd5Mechanism,
  fromAuthObject,
  loginMechanism,
  oauthbearerMechanism,
  pickMechanisms,
  plainMechanism,
  preferenceOrder,
  scramSha1Mechanism,
  scramSha256Mechanism,
  xoauth2Mechanism,
} from './auth';
export type {
  AuthObject,
  BearerCredentials,
  BearerMechanism,
  LoginMechanismOptions,
  MechanismFactory,
  OAuthBearerCredentials,
  SaslMechanism,
  ScramOptions,
  TextMechanism,
} from './auth';

export { SMTP } from './client/smtp';
export type { SMTPOptions, DebugMessage, DebugSink } from './client/smtp';
export { SMTP_SSL } from './client/smtp-ssl';
export { LMTP } from './client/lmtp';

export { SMTPPool } from './pool/pool';
export type { PoolConfig, RetryPolicy } from './pool/pool';
export type { PoolEvent, PoolLogger, PoolStats } from './pool/monitor';
export type { Logger } from './transport/logger';
export { THROTTLE_RULES, throttleStage } from './pool/throttle';
export type { ThrottleOptions, ThrottleRule, ThrottleStage } from './pool/throttle';
export type { FailureStatus, PoolMessage, SendOutcome } from './pool/outcome';
export type { RateLimit } from './pool/rate-window';
export { sendAll, sendAll$ } from './pool/send-all';
export type { MessageSource } from './pool/send-all';
export { classifyFailure } from './pool/outcome';
