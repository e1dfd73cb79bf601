import { lastValueFrom, toArray } from 'rxjs';
import { toChunks$ } from '../../lib/wire/body-source';

/** An async iterable over `values` that records whether `return()` was called (an early exit). */
function recorded(values: readonly Uint8Array[]) {
  const calls = { returned: 0 };
  const iterable: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      let i = 0;
      return {
        next: async () => {
          const value = values[i++];
          return value === undefined ? { done: true, value: undefined } : { done: false, value };
        },
        return: async () => {
          calls.returned += 1;
          return { done: true, value: undefined };
        },
      };
    },
  };
  return { iterable, calls };
}

describe('toChunks$ and the source iterator', () => {
  it('does not call return() on an iterator it read to the end (only an early exit does)', async () => {
    const { iterable, calls } = recorded([Buffer.from('a'), Buffer.from('b')]);
    const chunks = await lastValueFrom(toChunks$(iterable).pipe(toArray()));
    expect(chunks.map((c) => Buffer.from(c).toString())).toEqual(['a', 'b']);
    expect(calls.returned).toBe(0);
  });

  it("errors with the gate's own exception when the gate throws", async () => {
    const boom = new Error('gate broke');
    const result = lastValueFrom(
      toChunks$('body', {
        ready: () => {
          throw boom;
        },
      }),
    ).catch((e: unknown) => e);
    expect(await result).toBe(boom);
  });
});

describe('toChunks$ error messages', () => {
  it('names the chunk size it refuses', () => {
    expect(() => toChunks$('x', { chunkSize: 0 })).toThrow('chunkSize must be a positive integer, got 0');
  });

  it('names the shapes a body may have', async () => {
    const err = await lastValueFrom(toChunks$(42 as unknown as string)).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      'A body must be a string, a Uint8Array, a Readable, an AsyncIterable or an Observable',
    );
  });

  it('names the type of a chunk that is neither bytes nor a string', async () => {
    const numbers = {
      [Symbol.asyncIterator]: () => ({ next: async () => ({ done: false, value: 7 }) }),
    } as unknown as AsyncIterable<Uint8Array>;
    const err = await lastValueFrom(toChunks$(numbers)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('A body chunk must be bytes or a string, got number');
  });
});
