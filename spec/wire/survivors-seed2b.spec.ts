import { Observable, lastValueFrom, of, toArray } from 'rxjs';
import { toChunks$ } from '../../lib/wire/body-source';
import { coalesce, nextTurn$ } from '../../lib/wire/coalesce';
import { ReplyParser } from '../../lib/wire/reply';

/* Boundaries and defaults of lib/wire/ that the seed-2 mutation sample found unpinned (second sweep). */

type KernelModule = typeof import('../../lib/wire/encoder-kernel');

/** encoder-kernel in a module registry of its own: its JS fallback starts with an empty scratch buffer. */
function freshKernel(): KernelModule {
  let loaded: KernelModule | undefined;
  jest.isolateModules(() => {
    loaded = require('../../lib/wire/encoder-kernel') as KernelModule;
  });
  return loaded!;
}

/** Immediates pending in this process (Node's own count, not ours). */
const pendingImmediates = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length;

/** Subscribes to `chunks$` and counts what it emits; `done` resolves on completion. */
function count(chunks$: Observable<Uint8Array>): { chunks: () => number; done: Promise<void> } {
  let chunks = 0;
  const done = new Promise<void>((resolve, reject) => {
    chunks$.subscribe({
      next: () => {
        chunks++;
      },
      error: reject,
      complete: resolve,
    });
  });
  return { chunks: () => chunks, done };
}

describe('toChunks$ turn budget', () => {
  it('emits at most 256 chunks of an in-memory body before it lets the event loop turn', async () => {
    const run = count(toChunks$(new Uint8Array(300), { chunkSize: 1 }));
    // In-memory and no gate: everything up to the budget went out synchronously, within subscribe().
    expect(run.chunks()).toBe(256);
    await run.done;
    expect(run.chunks()).toBe(300);
  });

  it('emits at most 1 MiB of an in-memory body before it lets the event loop turn', async () => {
    const run = count(toChunks$(new Uint8Array(1024 * 1024 + 1), { chunkSize: 64 * 1024 }));
    expect(run.chunks()).toBe(16);
    await run.done;
    expect(run.chunks()).toBe(17);
  });

  it('cancels its pause when unsubscribed during it', () => {
    const before = pendingImmediates();
    let chunks = 0;
    const subscription = toChunks$(new Uint8Array(300), { chunkSize: 1 }).subscribe(() => chunks++);
    // The budget is spent: the rest waits for the next turn, on a setImmediate.
    expect(chunks).toBe(256);
    expect(pendingImmediates()).toBe(before + 1);
    subscription.unsubscribe();
    expect(pendingImmediates()).toBe(before);
  });

  it('charges a stream value of exactly chunkSize bytes as one chunk', async () => {
    async function* values(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 300; i++) yield Buffer.from([i & 0xff]);
    }
    // An immediate queued before the run: the run's own pause (after its budget) comes after it. The
    // generator's values are ready at once, so until then only promise callbacks run.
    const turn = new Promise<void>((resolve) => setImmediate(resolve));
    const run = count(toChunks$(values(), { chunkSize: 1 }));
    await turn;
    expect(run.chunks()).toBe(256);
    await run.done;
    expect(run.chunks()).toBe(300);
  });
});

describe('coalesce and nextTurn$ bounds', () => {
  it('takes maxBytes 1: every non-empty chunk goes out as it is', async () => {
    const out = await lastValueFrom(
      of(Buffer.from('a'), Buffer.from(''), Buffer.from('bc'), Buffer.from('d')).pipe(coalesce(1), toArray()),
    );
    expect(out.map((c) => Buffer.from(c).toString('latin1'))).toEqual(['a', 'bc', 'd']);
  });

  it('passes a chunk of maxBytes through as it is after an empty chunk, without copying it', async () => {
    const chunk = Buffer.from('abc');
    const out = await lastValueFrom(of(Buffer.alloc(0), chunk).pipe(coalesce(3), toArray()));
    expect(out).toHaveLength(1);
    expect(out[0]).toBe(chunk);
  });

  it('nextTurn$ cancels its setImmediate when unsubscribed before it fires', () => {
    const before = pendingImmediates();
    const subscription = nextTurn$().subscribe();
    expect(pendingImmediates()).toBe(before + 1);
    subscription.unsubscribe();
    expect(pendingImmediates()).toBe(before);
  });
});

describe('ReplyParser bounds', () => {
  it('reads a reply code of 000 as code 0, as smtplib reads any three digits', () => {
    const [reply] = new ReplyParser().push(Buffer.from('000 zero\r\n'));
    expect(reply).toEqual({ code: 0, message: 'zero', lines: ['zero'] });
  });

  it('holds nothing for an empty chunk: it is no line, so no line limit applies to it', () => {
    // A limit no line can meet: any byte would break it, and an empty chunk has none.
    const parser = new ReplyParser({ maxLineLength: 0, maxLines: 1, maxReplyBytes: 1 });
    expect(parser.push(new Uint8Array(0))).toEqual([]);
    expect(parser.buffered).toBe(0);
    expect(() => parser.push(Buffer.from('2'))).toThrow('Line too long.');
  });
});

describe('encodeSpanJs scratch buffer', () => {
  it('has room for the worst case, two bytes out for every byte in', () => {
    const { encodeSpanJs } = freshKernel();
    const encode = (text: string): string =>
      encodeSpanJs(Buffer.from(text, 'latin1'), 0, true, true).toString('latin1');
    // Growing sizes, so that each call is one that grows the scratch buffer to what it asks for.
    for (let n = 1; n <= 64; n++) {
      expect(encode('\n'.repeat(n))).toBe('\r\n'.repeat(n));
      // A dot that starts a line is doubled too: ".\n" is four bytes out of two.
      expect(encode('.\n'.repeat(n))).toBe('..\r\n'.repeat(n));
    }
  });
});
