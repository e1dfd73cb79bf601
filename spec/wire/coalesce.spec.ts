import { Observable, map, of, timer } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { coalesce, nextTurn$ } from '../../lib/wire/coalesce';

/** Marble values are strings; the operator sees them as bytes and its output is read back as text. */
const bytes = (values: Record<string, string>): Record<string, Buffer> =>
  Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v, 'latin1')]));
const asText = (source: Observable<Uint8Array>): Observable<string> =>
  source.pipe(map((c) => Buffer.from(c).toString('latin1')));

describe('coalesce', () => {
  let scheduler: TestScheduler;
  beforeEach(() => {
    scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  /** The source goes quiet when 3 frames pass without a chunk. */
  const quiet = (): Observable<unknown> => timer(3);

  it('merges chunks up to maxBytes and emits at once when they are reached', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const source = cold('a-b-c-d-e-f-|', bytes({ a: 'a', b: 'b', c: 'c', d: 'd', e: 'e', f: 'f' }));
      expectObservable(asText(source.pipe(coalesce(3, quiet)))).toBe('----x-----y-|', { x: 'abc', y: 'def' });
    });
  });

  it('emits the held bytes before a chunk that would take them over maxBytes, never splitting a chunk', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const source = cold('a-b-c-|', bytes({ a: 'aa', b: 'bbbbb', c: 'c' }));
      expectObservable(asText(source.pipe(coalesce(3, quiet)))).toBe('--(xy)(z|)', { x: 'aa', y: 'bbbbb', z: 'c' });
    });
  });

  it('emits what it holds once the source is quiet, however little', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const source = cold('a-b------c|', bytes({ a: 'a', b: 'b', c: 'c' }));
      // Armed at "a", still busy at its end ("b" came): armed again, quiet at frame 5.
      expectObservable(asText(source.pipe(coalesce(100, quiet)))).toBe('------x---(y|)', { x: 'ab', y: 'c' });
    });
  });

  it('holds nothing when idle answers at once', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const source = cold('ab|', bytes({ a: 'a', b: 'b' }));
      expectObservable(asText(source.pipe(coalesce(100, () => of(0))))).toBe('ab|', { a: 'a', b: 'b' });
    });
  });

  it('emits the rest when the source completes', () => {
    scheduler.run(({ cold, expectObservable }) => {
      expectObservable(asText(cold('ab|', bytes({ a: 'a', b: 'b' })).pipe(coalesce(100, quiet)))).toBe('--(x|)', {
        x: 'ab',
      });
    });
  });

  it('drops empty chunks and completes without a value for an empty source', () => {
    scheduler.run(({ cold, expectObservable }) => {
      expectObservable(asText(cold('a-|', bytes({ a: '' })).pipe(coalesce(3, quiet)))).toBe('--|');
      expectObservable(asText(cold<Uint8Array>('|').pipe(coalesce(3, quiet)))).toBe('|');
    });
  });

  it('never emits for a source that never emits', () => {
    scheduler.run(({ cold, expectObservable }) => {
      expectObservable(asText(cold<Uint8Array>('-').pipe(coalesce(3, quiet)))).toBe('-');
    });
  });

  it('forwards an error', () => {
    scheduler.run(({ cold, expectObservable }) => {
      expectObservable(asText(cold('a-#', bytes({ a: 'a' })).pipe(coalesce(3, quiet)))).toBe('--#');
    });
  });

  it('stops listening to the source and to idle when unsubscribed', () => {
    scheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = cold('a-------b|', bytes({ a: 'a', b: 'b' }));
      const idle = hot<unknown>('-----------x');
      expectObservable(asText(source.pipe(coalesce(3, () => idle))), '^--!').toBe('-');
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(idle.subscriptions).toBe('^--!');
    });
  });

  it('rejects a maxBytes that is not a positive integer', () => {
    expect(() => coalesce(0)).toThrow(expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }));
  });

  it('waits one turn of the event loop by default', async () => {
    const seen: string[] = [];
    const turn = new Promise<void>((resolve) => setImmediate(resolve));
    const done = new Promise<void>((resolve) =>
      new Observable<Uint8Array>((s) => {
        s.next(Buffer.from('a'));
        s.next(Buffer.from('b'));
      })
        .pipe(coalesce(100))
        .subscribe((c) => {
          seen.push(Buffer.from(c).toString());
          resolve();
        }),
    );
    expect(seen).toEqual([]);
    // The turn scheduled before the chunks arrived ends first: they are still held then.
    await turn;
    expect(seen).toEqual([]);
    await done;
    expect(seen).toEqual(['ab']);
  });

  it('nextTurn$ emits once, from setImmediate, and can be cancelled', async () => {
    let fired = 0;
    nextTurn$()
      .subscribe(() => fired++)
      .unsubscribe();
    const values: unknown[] = [];
    await new Promise<void>((resolve) => nextTurn$().subscribe({ next: (v) => values.push(v), complete: resolve }));
    expect(values).toEqual([undefined]);
    expect(fired).toBe(0);
  });
});
