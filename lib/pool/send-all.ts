import { Observable, OperatorFunction, isObservable, mergeMap } from 'rxjs';
import { PoolMessage, SendOutcome } from './outcome';
import type { SMTPPool } from './pool';
import { pull$ } from './pull';

/**
 * Sends each message through the pool and emits its one outcome, in the order
 * the outcomes arrive. At most `pool.queueLimit` messages are held at once
 * (`mergeMap` concurrency): queued, in flight or waiting to retry.
 *
 * ```
 * messages$:            --a--b--c-------|
 * sendAll(pool):        ------ob---oa--oc|     o: sent | refused | failed | possibly-delivered
 * ```
 *
 * A push source that emits faster than the servers take messages fills
 * `mergeMap`'s buffer: for a producer that should only be read as the pool
 * has room (a generator, a database cursor), pass it to `sendAll$` as an
 * Iterable or AsyncIterable instead.
 *
 * @example
 * messages$.pipe(sendAll(pool)).subscribe((o) => o.status !== 'sent' && console.warn(o.message.id, o.status));
 * @param pool the pool to send through.
 * @return one `SendOutcome` per message; never errors for a message's sake.
 */
export function sendAll<Id>(pool: SMTPPool): OperatorFunction<PoolMessage<Id>, SendOutcome<Id>> {
  return mergeMap((message) => pool.send$(message), pool.queueLimit);
}

/** Messages to send: pulled one at a time when Iterable or AsyncIterable, or pushed by an Observable. */
export type MessageSource<Id> =
  Iterable<PoolMessage<Id>> | AsyncIterable<PoolMessage<Id>> | Observable<PoolMessage<Id>>;

/**
 * `sendAll` as a function, over a source that is read only when there is room:
 * the next message is taken from an (async) iterator once fewer than
 * `pool.queueLimit` are held, so a producer of any length costs that many
 * messages of memory.
 *
 * ```
 * sendAll$(pool, generator()):  ---o--o-o---o--|   (pulls n+1 after outcome 1 when the pool holds n = queueLimit)
 * ```
 *
 * @param pool the pool to send through.
 * @param messages an Iterable or AsyncIterable (pulled), or an Observable (as `sendAll`).
 * @return one `SendOutcome` per message, completing after the last.
 */
export function sendAll$<Id>(pool: SMTPPool, messages: MessageSource<Id>): Observable<SendOutcome<Id>> {
  if (isObservable(messages)) return messages.pipe(sendAll(pool));
  return pull$(messages, pool.queueLimit, (message) => pool.send$(message));
}
