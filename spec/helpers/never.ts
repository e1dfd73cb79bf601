import { Observable, OperatorFunction, Subject } from 'rxjs';

/** Lets promise callbacks, zero-delay timers and I/O callbacks run: `turns` turns of the event loop. */
export async function turns(count = 10): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * What `operator` does with a source that never emits: it must stay silent (no value, no error,
 * no completion) while subscribed, over several turns of the event loop so that a timer or a
 * promise it starts gets its chance, keep listening to the source, and let go of it when
 * unsubscribed. Unsubscribing at once would prove none of this.
 */
export async function expectSilentOnNever<T, R>(
  operator: OperatorFunction<T, R> | ((source: Observable<T>) => Observable<R>),
): Promise<void> {
  const source = new Subject<T>();
  const seen: string[] = [];
  const subscription = operator(source.asObservable()).subscribe({
    next: (value) => seen.push(`next ${String(value)}`),
    error: (err: unknown) => seen.push(`error ${String(err)}`),
    complete: () => seen.push('complete'),
  });
  await turns();
  expect(seen).toEqual([]);
  expect(source.observed).toBe(true);
  subscription.unsubscribe();
  expect(source.observed).toBe(false);
}
