/**
 * What the page is told, one JSON object per Server-Sent Event. Every event
 * about a message carries its `id`; a page that reloads replays the batch's
 * log of these (less `stats`, of which only the latest matters) and is up to date.
 */
export type WebEvent = BatchEvent | RecipientEvent | RetryEvent | OutcomeEvent | StatsEvent | DoneEvent;

export interface BatchEvent {
  readonly type: 'batch';
  readonly batch: string;
  readonly rateLimit: number;
  readonly messages: readonly { readonly id: number; readonly to: readonly string[] }[];
}

/** One RCPT reply: 2xx accepted, 4xx deferred, 5xx refused (RFC 5321 §4.2.1). */
export interface RecipientEvent {
  readonly type: 'recipient';
  readonly id: number;
  readonly attempt: number;
  readonly recipient: string;
  readonly status: 'accepted' | 'deferred' | 'refused';
  readonly code: number;
}

/** An attempt failed transiently; the next starts after `delayMs`. */
export interface RetryEvent {
  readonly type: 'retry';
  readonly id: number;
  readonly attempt: number;
  readonly delayMs: number;
  readonly reason: string;
}

export type OutcomeStatus = 'sent' | 'refused' | 'failed' | 'possibly-delivered' | 'cancelled';

/** How a message ended: exactly one per message. */
export interface OutcomeEvent {
  readonly type: 'outcome';
  readonly id: number;
  readonly status: OutcomeStatus;
  readonly attempts: number;
  readonly reason?: string;
}

export interface StatsEvent {
  readonly type: 'stats';
  readonly connections: number;
  readonly queued: number;
  readonly running: number;
  /** The pool's adaptive throttle: how many slow-downs since it was last released (0: none). */
  readonly throttleLevel: number;
  readonly rateLimit: number;
  readonly messagesPerSecond: number;
}

export interface DoneEvent {
  readonly type: 'done';
  readonly batch: string;
}
