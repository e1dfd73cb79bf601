import { Readable } from 'node:stream';
import { firstValueFrom, lastValueFrom, of, take, toArray } from 'rxjs';
import { bodyFacts, has8bit, knownSize, toChunks$ } from '../../lib/wire/body-source';

const text = (chunks: readonly Uint8Array[]): string[] => chunks.map((c) => Buffer.from(c).toString('latin1'));

/** Lets pending promise callbacks and stream ticks run; used to show that nothing more happens. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A gate that stays shut until `open()` is called; counts how often it was asked. */
function gate(): { ready: () => Promise<void> | undefined; open: () => void; shut: () => void } {
  let pending: { promise: Promise<void>; resolve: () => void } | undefined;
  return {
    ready: () => pending?.promise,
    shut: () => {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      pending = { promise, resolve };
    },
    open: () => {
      pending?.resolve();
      pending = undefined;
    },
  };
}

/** A Readable of `count` chunks that counts how often it was asked for data. */
function countingReadable(count: number): { stream: Readable; pulls: () => number } {
  let pulls = 0;
  const stream = new Readable({
    highWaterMark: 1,
    read() {
      pulls++;
      this.push(pulls <= count ? Buffer.from(`chunk ${pulls}\n`) : null);
    },
  });
  return { stream, pulls: () => pulls };
}

describe('toChunks$', () => {
  describe('in-memory bodies', () => {
    it('encodes a string as UTF-8 and slices it', async () => {
      const chunks = await lastValueFrom(toChunks$('héllo', { chunkSize: 2 }).pipe(toArray()));
      expect(chunks.map((c) => Buffer.from(c).toString('hex'))).toEqual(['68c3', 'a96c', '6c6f']);
    });

    it('slices a Uint8Array without copying', async () => {
      const body = new Uint8Array(5).fill(0x61);
      const chunks = await lastValueFrom(toChunks$(body, { chunkSize: 2 }).pipe(toArray()));
      expect(chunks.map((c) => c.length)).toEqual([2, 2, 1]);
      for (const chunk of chunks) expect(chunk.buffer).toBe(body.buffer);
    });

    it('completes without a chunk for an empty body', async () => {
      expect(await lastValueFrom(toChunks$('').pipe(toArray()))).toEqual([]);
    });

    it('emits synchronously while the gate is open', () => {
      const seen: Uint8Array[] = [];
      toChunks$('abc', { chunkSize: 1 }).subscribe((c) => seen.push(c));
      expect(text(seen)).toEqual(['a', 'b', 'c']);
    });

    it('waits for the gate before each slice', async () => {
      const { ready, open, shut } = gate();
      const seen: Uint8Array[] = [];
      shut();
      toChunks$('abc', { chunkSize: 1, ready }).subscribe((c) => seen.push(c));
      expect(seen).toEqual([]);
      open();
      await settle();
      expect(text(seen)).toEqual(['a', 'b', 'c']);
    });

    it('uses 64 KiB chunks by default', async () => {
      const chunks = await lastValueFrom(toChunks$(new Uint8Array(64 * 1024 + 1)).pipe(toArray()));
      expect(chunks.map((c) => c.length)).toEqual([64 * 1024, 1]);
    });

    it('rejects a chunk size that is not a positive integer', () => {
      expect(() => toChunks$('a', { chunkSize: 0 })).toThrow(
        expect.objectContaining({ code: 'ERR_SMTP_INVALID_ARGUMENT' }),
      );
    });
  });

  describe('a Node Readable', () => {
    it('emits its chunks', async () => {
      const chunks = await lastValueFrom(
        toChunks$(Readable.from([Buffer.from('a'), Buffer.from('b')])).pipe(toArray()),
      );
      expect(text(chunks)).toEqual(['a', 'b']);
    });

    it('encodes strings of a string-mode stream as UTF-8', async () => {
      const chunks = await lastValueFrom(toChunks$(Readable.from(['é', 'x'])).pipe(toArray()));
      expect(chunks.map((c) => Buffer.from(c).toString('hex'))).toEqual(['c3a9', '78']);
    });

    it('slices chunks bigger than chunkSize', async () => {
      const chunks = await lastValueFrom(
        toChunks$(Readable.from([Buffer.from('abcde')]), { chunkSize: 2 }).pipe(toArray()),
      );
      expect(text(chunks)).toEqual(['ab', 'cd', 'e']);
    });

    it('is not read ahead while the gate is shut', async () => {
      const { stream, pulls } = countingReadable(1000);
      const { ready, open, shut } = gate();
      const seen: Uint8Array[] = [];
      const done = new Promise<void>((resolve) =>
        toChunks$(stream, { ready }).subscribe({
          next: (c) => {
            seen.push(c);
            if (seen.length === 3) shut();
          },
          complete: resolve,
        }),
      );
      await settle();
      expect(seen).toHaveLength(3);
      // The stream's own buffer may hold a chunk or two (highWaterMark), never the rest.
      expect(pulls()).toBeLessThanOrEqual(seen.length + 2);
      open();
      await done;
      // A byte stream may merge buffered chunks, so compare the bytes, not the chunk count.
      const expected = Array.from({ length: 1000 }, (_, i) => `chunk ${i + 1}\n`).join('');
      expect(text(seen).join('')).toBe(expected);
    });

    it('is destroyed on unsubscribe', async () => {
      const { stream } = countingReadable(1000);
      await firstValueFrom(toChunks$(stream));
      expect(stream.destroyed).toBe(true);
    });

    it('is destroyed on unsubscribe before anything was read', () => {
      const { stream, pulls } = countingReadable(1000);
      const { ready, shut } = gate();
      shut();
      toChunks$(stream, { ready }).subscribe().unsubscribe();
      expect(stream.destroyed).toBe(true);
      expect(pulls()).toBe(0);
    });

    it('forwards its error', async () => {
      const stream = new Readable({
        read() {
          this.destroy(new Error('EIO'));
        },
      });
      await expect(lastValueFrom(toChunks$(stream))).rejects.toThrow('EIO');
    });

    it('is destroyed when the gate fails', async () => {
      const { stream } = countingReadable(1000);
      const failure = Promise.reject(new Error('socket closed'));
      await expect(lastValueFrom(toChunks$(stream, { ready: () => failure }))).rejects.toThrow('socket closed');
      expect(stream.destroyed).toBe(true);
    });

    it('errors on a value that is not bytes or a string', async () => {
      const stream = Readable.from([42]);
      await expect(lastValueFrom(toChunks$(stream))).rejects.toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
      expect(stream.destroyed).toBe(true);
    });
  });

  describe('an AsyncIterable', () => {
    function counted(count: number): {
      iterable: AsyncIterable<Uint8Array>;
      pulls: () => number;
      closed: () => boolean;
    } {
      let pulls = 0;
      let closed = false;
      async function* generate(): AsyncGenerator<Uint8Array> {
        try {
          while (pulls < count) {
            pulls++;
            yield Buffer.from(String(pulls));
          }
        } finally {
          closed = true;
        }
      }
      return { iterable: generate(), pulls: () => pulls, closed: () => closed };
    }

    it('is pulled lazily, only once subscribed', async () => {
      const { iterable, pulls } = counted(3);
      const chunks$ = toChunks$(iterable);
      await settle();
      expect(pulls()).toBe(0);
      expect(text(await lastValueFrom(chunks$.pipe(toArray())))).toEqual(['1', '2', '3']);
    });

    it('is pulled exactly once per chunk while the gate allows', async () => {
      const { iterable, pulls } = counted(100);
      const { ready, open, shut } = gate();
      let seen = 0;
      const done = new Promise<void>((resolve) =>
        toChunks$(iterable, { ready }).subscribe({
          next: () => {
            if (++seen === 5) shut();
          },
          complete: resolve,
        }),
      );
      await settle();
      expect(pulls()).toBe(5);
      open();
      await done;
      expect(pulls()).toBe(100);
    });

    it('has return() called on unsubscribe', async () => {
      const { iterable, closed } = counted(100);
      await lastValueFrom(toChunks$(iterable).pipe(take(2)));
      await settle();
      expect(closed()).toBe(true);
    });

    it('forwards its error', async () => {
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield Buffer.from('a');
        throw new Error('upstream failed');
      }
      const seen: Uint8Array[] = [];
      const error = await new Promise((resolve) =>
        toChunks$(failing()).subscribe({ next: (c) => seen.push(c), error: resolve }),
      );
      expect(error).toEqual(new Error('upstream failed'));
      expect(text(seen)).toEqual(['a']);
    });
  });

  describe('an Observable', () => {
    it('is passed through as is', () => {
      const body$ = of(new Uint8Array([1]));
      expect(toChunks$(body$)).toBe(body$);
    });
  });

  it('errors for a body of no supported shape', async () => {
    const notABody = 42 as unknown as string;
    await expect(lastValueFrom(toChunks$(notABody))).rejects.toMatchObject({ code: 'ERR_SMTP_INVALID_ARGUMENT' });
  });
});

describe('knownSize', () => {
  it('counts UTF-8 bytes of a string and bytes of a Uint8Array', () => {
    expect(knownSize('héllo')).toBe(6);
    expect(knownSize(new Uint8Array(7))).toBe(7);
  });

  it('does not know the size of a stream', () => {
    expect(knownSize(Readable.from([]))).toBeUndefined();
    expect(knownSize(of(new Uint8Array(1)))).toBeUndefined();
  });
});

describe('has8bit', () => {
  it('tells whether an in-memory body has a byte of 0x80 or more', () => {
    expect(has8bit('plain\r\n')).toBe(false);
    expect(has8bit('héllo')).toBe(true);
    expect(has8bit(new Uint8Array([0x41, 0x7f]))).toBe(false);
    expect(has8bit(new Uint8Array([0x41, 0x80]))).toBe(true);
  });

  it('cannot tell for a stream', () => {
    expect(has8bit(Readable.from([]))).toBeUndefined();
  });
});

describe('bodyFacts', () => {
  it('counts an in-memory body as the encoder will send it: CRLF line ends, last line closed', () => {
    expect(bodyFacts('a\nb\rc\r\n.d')).toEqual({ size: 9, canonicalSize: 13, lineLeadingDots: 1, has8bit: false });
    expect(bodyFacts(Buffer.from('.\r\r\n..é'))).toEqual({
      size: 8,
      canonicalSize: 11,
      lineLeadingDots: 2,
      has8bit: true,
    });
  });

  it('adds nothing to an empty body', () => {
    expect(bodyFacts('')).toEqual({ size: 0, canonicalSize: 0, lineLeadingDots: 0, has8bit: false });
  });

  it('knows nothing of a stream', () => {
    expect(bodyFacts(Readable.from([]))).toEqual({});
  });
});
