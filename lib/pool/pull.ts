import { Observable, Subscription } from 'rxjs';

/**
 * `mergeMap` with concurrency `limit` for a pulled source: reads the next
 * value only when fewer than `limit` inner streams are active.
 *
 * ```
 * pull$([a, b, c], 2, p):  (pa pb) --pa ends-- (pc) ...
 * ```
 */
export function pull$<T, R>(
  source: Iterable<T> | AsyncIterable<T>,
  limit: number,
  project: (value: T) => Observable<R>,
): Observable<R> {
  return new Observable<R>((subscriber) => {
    const isAsync = Symbol.asyncIterator in source;
    const iterator = isAsync ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
    const active = new Set<Subscription>();
    let exhausted = false;
    let reading = false;
    const startInner = (value: T): void => {
      let inner: Subscription | undefined;
      let ended = false;
      // Assigned apart from its declaration: an inner stream that ends during subscribe() calls
      // complete before `inner` is set (a const would throw there).
      // eslint-disable-next-line prefer-const
      inner = project(value).subscribe({
        next: (r) => subscriber.next(r),
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          ended = true;
          if (inner) active.delete(inner);
          void read();
        },
      });
      // `ended` is set by complete() when the inner stream ended during subscribe().
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
      if (!ended) active.add(inner);
    };
    /** One reader at a time: a sync iterator is read in a loop, an async one awaited. */
    const read = async (): Promise<void> => {
      if (reading) return;
      reading = true;
      try {
        while (!exhausted && active.size < limit && !subscriber.closed) {
          // A sync iterator is read without a microtask per value.
          const result = isAsync ? await iterator.next() : (iterator.next() as IteratorResult<T>);
          if (result.done) exhausted = true;
          else startInner(result.value);
        }
      } catch (err) {
        subscriber.error(err);
      } finally {
        reading = false;
      }
      if (exhausted && active.size === 0) subscriber.complete();
    };
    void read();
    return () => {
      for (const inner of active) inner.unsubscribe();
      if (!exhausted) void iterator.return?.();
    };
  });
}
