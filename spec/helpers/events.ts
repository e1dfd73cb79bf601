import { Observable, lastValueFrom, toArray } from 'rxjs';

/** Every value of a finite stream, or its error (as the last element) — for asserting event sequences. */
export async function collect<T>(source$: Observable<T>): Promise<{ values: T[]; error?: unknown }> {
  const values: T[] = [];
  return new Promise((resolve) => {
    source$.subscribe({
      next: (v) => values.push(v),
      error: (error: unknown) => resolve({ values, error }),
      complete: () => resolve({ values }),
    });
  });
}

export const all = <T>(source$: Observable<T>): Promise<T[]> => lastValueFrom(source$.pipe(toArray()));
