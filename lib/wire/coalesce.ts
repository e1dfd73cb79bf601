import { Observable, OperatorFunction, Subscription, take } from 'rxjs';
import { SMTPInvalidArgumentError } from '../errors';

/**
 * Emits once the event loop has run a full turn (its check phase, after pending I/O and timers):
 * the moment a source that had more bytes ready would have produced them.
 */
export function nextTurn$(): Observable<void> {
  return new Observable<void>((subscriber) => {
    const handle = setImmediate(() => {
      subscriber.next();
      subscriber.complete();
    });
    return () => clearImmediate(handle);
  });
}

/**
 * Merges small consecutive byte chunks into chunks of up to `maxBytes`, without ever holding
 * bytes back from a source that is waiting for more.
 *
 * ```
 * source:  -a-b-c-----d-e-|        (a..e each 1 byte, maxBytes 3)
 * idle:     quiet for one turn after "c"
 * result:  -----"abc"-----("de"|)
 * ```
 *
 * The held bytes go out, as one chunk:
 * - as soon as `maxBytes` are held, or before a chunk that would take them over `maxBytes`
 *   (a chunk is never split: one already `maxBytes` or larger passes through as it is);
 * - when `idle()` emits and no chunk arrived since it was subscribed: the source has nothing
 *   ready, so waiting longer would stall the wire (a slow producer, or one gated by backpressure);
 *   when chunks did arrive meanwhile, `idle()` is subscribed again;
 * - when the source completes.
 *
 * This is what keeps a body of many tiny chunks from costing one write, or one BDAT command
 * (RFC 3030 §2), per chunk. Errors pass through (held bytes are dropped with the stream);
 * unsubscribing releases the idle subscription.
 *
 * @example
 * toChunks$(body).pipe(encodeBody({ dotStuff: false, terminate: false }), coalesce(64 * 1024))
 *
 * @param maxBytes the size at which held bytes are emitted.
 * @param idle subscribed while bytes are held; its first value means "the source went quiet".
 * Default: the next turn of the event loop (`setImmediate`).
 * @return an operator from byte chunks to fewer, bigger byte chunks, in the same order.
 */
export function coalesce(
  maxBytes: number,
  idle: () => Observable<unknown> = nextTurn$,
): OperatorFunction<Uint8Array, Uint8Array> {
  if (!Number.isInteger(maxBytes) || maxBytes < 1) {
    throw new SMTPInvalidArgumentError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  return (source) =>
    new Observable<Uint8Array>((subscriber) => {
      let held: Uint8Array[] = [];
      let heldBytes = 0;
      let watch: Subscription | undefined;
      /** A chunk arrived since `watch` was subscribed: the source is not idle yet. */
      let busy = false;

      const flush = (): void => {
        watch?.unsubscribe();
        watch = undefined;
        if (heldBytes === 0) return;
        const out = (held.length === 1 ? held[0] : undefined) ?? Buffer.concat(held, heldBytes);
        held = [];
        heldBytes = 0;
        subscriber.next(out);
      };
      const onIdle = (): void => {
        watch = undefined;
        if (busy) arm();
        else flush();
      };
      const arm = (): void => {
        busy = false;
        const subscription = idle().pipe(take(1)).subscribe(onIdle);
        // An idle() that emits synchronously has already flushed.
        watch = subscription.closed ? undefined : subscription;
      };

      const subscription = source.subscribe({
        next(chunk) {
          if (chunk.length === 0) return;
          if (heldBytes + chunk.length > maxBytes) flush();
          held.push(chunk);
          heldBytes += chunk.length;
          if (heldBytes >= maxBytes) flush();
          else if (watch) busy = true;
          else arm();
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          flush();
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        watch?.unsubscribe();
      };
    });
}
