import {
  EMPTY,
  Observable,
  Subject,
  concatMap,
  firstValueFrom,
  from,
  lastValueFrom,
  of,
  throwError,
  toArray,
  concat,
  take,
} from 'rxjs';
import { DEFAULT_MAX_HEADER_BYTES, HeaderSplit, splitHeaderBlock$ } from '../../lib/message/header-block';
import { expectSilentOnNever } from '../helpers/never';
import { defined } from '../helpers/defined';

const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf8'));
const text = (data: Uint8Array): string => Buffer.from(data).toString('utf8');
const join = (chunks: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(chunks));

/** Cuts `data` into chunks of the given sizes, cycling through them. */
function chunked(data: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = defined(sizes[i % sizes.length], 'a chunk size');
    chunks.push(data.slice(at, at + size));
    at += size;
  }
  return chunks;
}

/** Splits and reads the whole body, the way a sender does (rest$ read inside the outer subscription). */
function splitAll(chunks$: Observable<Uint8Array>, maxHeaderBytes?: number) {
  return lastValueFrom(
    splitHeaderBlock$(chunks$, maxHeaderBytes === undefined ? {} : { maxHeaderBytes }).pipe(
      concatMap(({ headers, rest$ }) =>
        rest$.pipe(
          toArray(),
          concatMap((rest) => of({ headers, rest })),
        ),
      ),
    ),
  );
}

const MESSAGE =
  'From: Ann <ann@example.com>\r\n' +
  'To: bob@example.com,\r\n' +
  '\tcarol@example.com\r\n' +
  'Subject: a folded\r\n   subject\r\n' +
  '\r\n' +
  'Body line 1\r\n\r\nBody line 3\r\n';
const HEADER_LENGTH = MESSAGE.indexOf('\r\n\r\n') + 2;

describe('splitHeaderBlock$', () => {
  it('parses the header fields, unfolding folded values and keeping their raw bytes', async () => {
    const { headers, rest } = await splitAll(of(bytes(MESSAGE)));
    expect(headers.fields.map((f) => [f.name, f.value])).toEqual([
      ['From', 'Ann <ann@example.com>'],
      ['To', 'bob@example.com,\tcarol@example.com'],
      ['Subject', 'a folded   subject'],
    ]);
    expect(headers.fields.map((f) => text(f.raw))).toEqual([
      'From: Ann <ann@example.com>\r\n',
      'To: bob@example.com,\r\n\tcarol@example.com\r\n',
      'Subject: a folded\r\n   subject\r\n',
    ]);
    expect(text(headers.separator)).toBe('\r\n');
    expect(text(join(rest))).toBe('Body line 1\r\n\r\nBody line 3\r\n');
  });

  it('gives back the message byte for byte: fields, separator, then rest$', async () => {
    const input = bytes(MESSAGE);
    const { headers, rest } = await splitAll(of(input));
    expect(join([...headers.fields.map((f) => f.raw), headers.separator, ...rest])).toEqual(input);
  });

  it.each([
    ['LF LF', 'A: 1\nB: 2\n\nbody\n', '\n'],
    ['CRLF then LF', 'A: 1\nB: 2\r\n\nbody\n', '\n'],
    ['LF then CRLF', 'A: 1\nB: 2\n\r\nbody\r\n', '\r\n'],
  ])('ends the header at an empty line written %s', async (_, message, separator) => {
    const { headers, rest } = await splitAll(of(bytes(message)));
    expect(headers.fields.map((f) => f.value)).toEqual(['1', '2']);
    expect(text(headers.separator)).toBe(separator);
    expect(text(join(rest))).toMatch(/^body\r?\n$/);
  });

  it('reads a header block split into 1-byte chunks the same way', async () => {
    const input = bytes(MESSAGE);
    const whole = await splitAll(of(input));
    const split = await splitAll(from(chunked(input, [1])));
    expect(split.headers).toEqual(whole.headers);
    expect(join(split.rest)).toEqual(input.subarray(HEADER_LENGTH + 2));
  });

  it('finds the empty line when its CR ends one chunk and its LF starts the next', async () => {
    const at = MESSAGE.indexOf('\r\n\r\n') + 3;
    const input = bytes(MESSAGE);
    const { headers, rest } = await splitAll(from([input.slice(0, at), input.slice(at)]));
    expect(text(headers.separator)).toBe('\r\n');
    expect(headers.fields).toHaveLength(3);
    expect(text(join(rest))).toBe('Body line 1\r\n\r\nBody line 3\r\n');
  });

  it('streams rest$ byte-identical to the input tail, whatever the chunking', async () => {
    const body = new Uint8Array(10_000).map((_, i) => (i * 7919) % 256); // every byte value, CR and LF included
    const input = join([bytes('A: b\r\n\r\n'), body]);
    for (const sizes of [[1], [3, 1, 7], [8], [9], [4096], [100_000]]) {
      const { rest } = await splitAll(from(chunked(input, sizes)));
      expect(join(rest)).toEqual(body);
    }
  });

  it('hands on the tail of the chunk that held the empty line as a view of it, not a copy', async () => {
    const chunk = bytes('A: b\n\nbody');
    const { rest } = await splitAll(of(chunk));
    const tail = defined(rest[0], 'a chunk after the header block');
    expect(text(tail)).toBe('body');
    expect(tail.buffer).toBe(chunk.buffer);
  });

  it('does not modify the caller chunks', async () => {
    const chunks = chunked(bytes(MESSAGE), [5]);
    const copies = chunks.map((c) => c.slice());
    await splitAll(from(chunks));
    expect(chunks).toEqual(copies);
  });

  describe('line ends, read as the body encoder writes them (CRLF, LF and a bare CR each end a line)', () => {
    it('ends a field at a bare CR', async () => {
      const { headers } = await splitAll(of(bytes('Subject: hi\rBcc: x@y.test\r\n\r\nbody')));
      expect(headers.fields.map((f) => [f.name, f.value, text(f.raw)])).toEqual([
        ['Subject', 'hi', 'Subject: hi\r'],
        ['Bcc', 'x@y.test', 'Bcc: x@y.test\r\n'],
      ]);
    });

    it('unfolds a field folded after a bare CR', async () => {
      const { headers } = await splitAll(of(bytes('To: a@x.test,\r b@x.test\r\n\r\n')));
      expect(headers.fields.map((f) => f.value)).toEqual(['a@x.test, b@x.test']);
    });

    it.each([
      ['a bare CR after CRLF', 'A: 1\r\n\rbody', '\r', 'body'],
      ['a bare CR after a bare CR', 'A: 1\r\rbody', '\r', 'body'],
      ['CRLF after a bare CR', 'A: 1\r\r\nbody', '\r\n', 'body'],
      ['LF after a bare LF', 'A: 1\n\nbody', '\n', 'body'],
      ['a bare CR that ends the message', 'A: 1\r\n\r', '\r', ''],
    ])('ends the header block at an empty line made of %s', async (_name, message, separator, body) => {
      const input = bytes(message);
      for (let at = 0; at <= input.length; at++) {
        const { headers, rest } = await splitAll(from([input.slice(0, at), input.slice(at)]));
        expect(headers.fields.map((f) => [f.name, f.value])).toEqual([['A', '1']]);
        expect(text(headers.separator)).toBe(separator);
        expect(text(join(rest))).toBe(body);
      }
    });

    it('does not take the LF of a CRLF split across chunks for an empty line', async () => {
      const { headers, rest } = await splitAll(from([bytes('A: 1\r'), bytes('\nB: 2\r\n\r\nbody')]));
      expect(headers.fields.map((f) => f.name)).toEqual(['A', 'B']);
      expect(text(join(rest))).toBe('body');
    });
  });

  it('takes a message with no empty line as all header, with an empty rest$', async () => {
    const { headers, rest } = await splitAll(of(bytes('A: 1\r\nB: 2')));
    expect(headers.fields.map((f) => [f.name, f.value])).toEqual([
      ['A', '1'],
      ['B', '2'],
    ]);
    expect(headers.separator).toHaveLength(0);
    expect(rest).toEqual([]);
  });

  it('takes a message that starts with an empty line as all body', async () => {
    const { headers, rest } = await splitAll(of(bytes('\r\nbody')));
    expect(headers.fields).toEqual([]);
    expect(text(join(rest))).toBe('body');
  });

  it('emits an empty header block for an empty source', async () => {
    const { headers, rest } = await splitAll(EMPTY);
    expect(headers.fields).toEqual([]);
    expect(rest).toEqual([]);
  });

  it('keeps a line that is not a header field verbatim, with an empty name', async () => {
    const { headers } = await splitAll(of(bytes('garbage line\r\nA: 1\r\n\r\n')));
    expect(headers.fields.map((f) => [f.name, text(f.raw)])).toEqual([
      ['', 'garbage line\r\n'],
      ['A', 'A: 1\r\n'],
    ]);
  });

  it('accepts blanks before the colon (RFC 5322 obs-optional) and UTF-8 values', async () => {
    const { headers } = await splitAll(of(bytes('Subject : héllo\r\n\r\n')));
    expect(headers.fields[0]).toMatchObject({ name: 'Subject', value: 'héllo' });
  });

  describe('the bound', () => {
    const headerOf = (size: number) => 'X: ' + 'a'.repeat(size - 5) + '\r\n';

    it('defaults to 256 KiB', () => {
      expect(DEFAULT_MAX_HEADER_BYTES).toBe(256 * 1024);
    });

    it('accepts a header block of exactly the bound, separator not counted', async () => {
      const { headers } = await splitAll(from(chunked(bytes(headerOf(1000) + '\r\nbody'), [999, 1, 1, 1])), 1000);
      expect(headers.fields[0]?.raw).toHaveLength(1000);
    });

    it('refuses a header block one byte over the bound', async () => {
      const split = splitAll(from(chunked(bytes(headerOf(1001) + '\r\nbody'), [64])), 1000);
      await expect(split).rejects.toMatchObject({
        code: 'ERR_SMTP_INVALID_ARGUMENT',
        message: expect.stringMatching(/^header block too large/),
      });
    });

    it('refuses a never-ending header line once past the bound, without waiting for the end', async () => {
      const source = new Subject<Uint8Array>();
      const result = firstValueFrom(splitHeaderBlock$(source, { maxHeaderBytes: 100 }));
      for (let i = 0; i < 3; i++) source.next(bytes('x'.repeat(50)));
      await expect(result).rejects.toThrow('header block too large');
      expect(source.observed).toBe(false);
    });
  });

  describe('lifetime', () => {
    it('never emits for a source that never ends its header', async () => {
      await expectSilentOnNever((source$: Observable<Uint8Array>) =>
        splitHeaderBlock$(concat(of(bytes('A: 1\r\n')), source$)),
      );
    });

    it('errors with the source error met in the header', async () => {
      const source$ = concat(
        of(bytes('A: 1\r\n')),
        throwError(() => new Error('disk gone')),
      );
      await expect(firstValueFrom(splitHeaderBlock$(source$))).rejects.toThrow('disk gone');
    });

    it('passes a source error met in the body to rest$', async () => {
      const source$ = concat(
        of(bytes('A: 1\r\n\r\nbo')),
        throwError(() => new Error('disk gone')),
      );
      await expect(splitAll(source$)).rejects.toThrow('disk gone');
    });

    it('holds chunks pushed before rest$ is subscribed and delivers them in order', async () => {
      const source = new Subject<Uint8Array>();
      let split: HeaderSplit | undefined;
      const outer = splitHeaderBlock$(source).subscribe((value) => (split = value));
      source.next(bytes('A: 1\r\n\r\none,'));
      source.next(bytes('two,'));
      const rest = lastValueFrom(split!.rest$.pipe(toArray()));
      source.next(bytes('three'));
      source.complete();
      expect(text(join(await rest))).toBe('one,two,three');
      expect(outer.closed).toBe(true);
    });

    it('lets rest$ be subscribed only once', async () => {
      const split = await firstValueFrom(splitHeaderBlock$(of(bytes('A: 1\r\n\r\nbody'))));
      await lastValueFrom(split.rest$.pipe(toArray()));
      await expect(lastValueFrom(split.rest$)).rejects.toThrow('only once');
    });

    it('releases the source when rest$ is dropped, and completes', () => {
      const source = new Subject<Uint8Array>();
      const events: string[] = [];
      splitHeaderBlock$(source).subscribe({
        next: ({ rest$ }) => rest$.pipe(take(1)).subscribe((c) => events.push(text(c))),
        complete: () => events.push('complete'),
      });
      source.next(bytes('A: 1\r\n\r\n'));
      source.next(bytes('first'));
      expect(events).toEqual(['first', 'complete']);
      expect(source.observed).toBe(false);
    });

    it('releases the source when unsubscribed, and then rest$ errors rather than end early', () => {
      const source = new Subject<Uint8Array>();
      const events: string[] = [];
      const outer = splitHeaderBlock$(source).subscribe(({ rest$ }) =>
        rest$.subscribe({
          next: (c) => events.push(text(c)),
          complete: () => events.push('complete'),
          error: (e: Error) => events.push(e.message),
        }),
      );
      source.next(bytes('A: 1\r\n\r\npart'));
      outer.unsubscribe();
      expect(source.observed).toBe(false);
      expect(events).toEqual(['part', expect.stringMatching(/released before its body was read/)]);
    });
  });

  it('streams a lazily generated 50 MiB body through without holding it', async () => {
    const CHUNK = 64 * 1024;
    const TOTAL = 50 * 1024 * 1024;
    let produced = 0;
    let consumed = 0;
    let mostInFlight = 0;
    function* generate(): Generator<Uint8Array> {
      yield bytes('From: a@example.com\r\nTo: b@example.com\r\n\r\n');
      for (let sent = 0; sent < TOTAL; sent += CHUNK) {
        produced++;
        yield new Uint8Array(CHUNK).fill(0x61);
      }
    }
    const bodyBytes = await lastValueFrom(
      splitHeaderBlock$(from(generate())).pipe(
        concatMap(({ rest$ }) => rest$),
        concatMap((chunk) => {
          consumed++;
          mostInFlight = Math.max(mostInFlight, produced - consumed);
          return of(chunk.length);
        }),
        toArray(),
      ),
    );
    expect(bodyBytes.reduce((a, b) => a + b, 0)).toBe(TOTAL);
    // Each chunk reaches the consumer before the next one is generated: the splitter queues
    // nothing and keeps no body chunk (a memory reading would depend on when GC runs).
    expect(mostInFlight).toBe(0);
  });
});
