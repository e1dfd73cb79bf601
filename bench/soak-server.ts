/**
 * The fault soak's server (issue 11 §3): a loopback SMTP server on `node:net` that takes
 * pipelined transactions (DATA, and BDAT on some connections) and, by a seeded draw, answers
 * some commands with 4xx/5xx or cuts the connection at any step: with FIN (`end`) or RST
 * (`resetAndDestroy`), at the greeting, EHLO, MAIL, RCPT, DATA, mid-body, after the final dot
 * before or after its reply, RSET and QUIT. It records which messages it committed, so the soak
 * can hold every outcome against what the server really has.
 *
 * Replayable: a draw is a pure function of the seed and of what it decides on (the message's id
 * and attempt, the recipient, the connection's number), never of arrival order. One message's
 * fault script is then the same in every run with the same seed; which other messages share its
 * connection when it is cut still depends on timing.
 */
import * as net from 'node:net';

/** What the server does at one step: reply, cut (with or without a reply first), or never answer. */
type Action = { readonly reply: string; readonly cut?: Cut } | { readonly cut: Cut } | { readonly stall: true };
type Cut = 'fin' | 'rst';

/** A weighted choice: `[probability, action, label]`; the rest of the mass is the step's normal answer. */
type Table = readonly (readonly [number, Action, string])[];

const fin = (reply?: string): Action => (reply ? { reply, cut: 'fin' } : { cut: 'fin' });
const rst = (reply?: string): Action => (reply ? { reply, cut: 'rst' } : { cut: 'rst' });

/** Fault tables per step; probabilities per draw. */
const TABLES = {
  greeting: [
    [0.01, fin('421 4.3.2 soak: try later'), '421+FIN'],
    [0.005, fin(), 'FIN'],
    [0.005, rst(), 'RST'],
  ],
  ehlo: [
    [0.005, fin('421 4.3.2 soak: closing'), '421+FIN'],
    [0.003, fin(), 'FIN'],
    [0.003, rst(), 'RST'],
  ],
  mail: [
    [0.01, { reply: '451 4.3.0 soak: MAIL later' }, '451'],
    [0.005, { reply: '550 5.7.1 soak: sender refused' }, '550'],
    [0.003, fin('421 4.3.2 soak: closing'), '421+FIN'],
    [0.003, fin(), 'FIN'],
    [0.003, rst(), 'RST'],
  ],
  rcpt: [
    [0.01, { reply: '450 4.2.1 soak: mailbox busy' }, '450'],
    [0.01, { reply: '550 5.1.1 soak: no such user' }, '550'],
    [0.002, fin('421 4.3.2 soak: closing'), '421+FIN'],
    [0.002, fin(), 'FIN'],
    [0.002, rst(), 'RST'],
  ],
  data: [
    [0.005, { reply: '451 4.3.0 soak: DATA later' }, '451'],
    [0.003, { reply: '554 5.3.4 soak: DATA refused' }, '554'],
    [0.003, fin(), 'FIN'],
    [0.003, rst(), 'RST'],
  ],
  body: [
    [0.003, fin(), 'FIN mid-body'],
    [0.003, rst(), 'RST mid-body'],
  ],
  final: [
    [0.01, { reply: '451 4.3.0 soak: queue full' }, '451'],
    [0.005, { reply: '554 5.6.0 soak: content refused' }, '554'],
    [0.003, fin(), 'FIN before reply, not committed'],
    [0.003, rst(), 'RST before reply, not committed'],
    [0.003, fin(), 'FIN before reply, committed'],
    [0.003, rst(), 'RST before reply, committed'],
    [0.003, fin('250 2.0.0 soak: queued'), '250+FIN'],
    [0.003, rst('250 2.0.0 soak: queued'), '250+RST'],
    [0.0002, { stall: true }, 'stall'],
  ],
  rset: [
    [0.01, fin(), 'FIN'],
    [0.01, rst(), 'RST'],
    [0.01, { reply: '500 5.5.1 soak: no reset' }, '500'],
  ],
  quit: [[0.1, rst(), 'RST']],
} as const satisfies Readonly<Record<string, Table>>;
/** A step of the dialogue that can fail. */
type Step = keyof typeof TABLES;

/** Final-step labels whose message the server has committed before it cuts or replies. */
const COMMITTED_CUTS = new Set(['FIN before reply, committed', 'RST before reply, committed', '250+FIN', '250+RST']);

/** A draw in [0, 1) that depends only on the seed and the keys (FNV-1a, then a murmur3 finaliser). */
export function draw(seed: number, ...keys: readonly (string | number)[]): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const ch of keys.join('\u0000')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

/** A message's id as the server reads it from `MAIL FROM:<m{id}@soak.test>`. */
const SENDER = /^MAIL FROM:<m(\d+)@soak\.test>/i;

export interface SoakServerOptions {
  readonly seed: number;
  /** Message ids run from 0 to `messages - 1`: the books are fixed-size arrays, so the server's memory stays flat too. */
  readonly messages: number;
  /** Scales every fault probability (0: a well-behaved server). Default 1. */
  readonly faultScale?: number | undefined;
  /** The body the client sent for message `id`, to check what the server commits byte for byte. */
  readonly bodyOf: (id: number) => Buffer;
}

export class SoakServer {
  /** Message id → times the server committed it (took responsibility: RFC 5321 §4.1.1.4). */
  readonly commits: Uint8Array;
  /** Ids of messages committed with a body other than the one sent. */
  readonly corrupt: number[] = [];
  /** How many times each fault fired, as `step label`. */
  readonly faults = new Map<string, number>();
  /** Protocol errors the server saw from the client (bytes that make no sense where they came). */
  readonly violations: string[] = [];
  connections = 0;
  /** Message id → MAIL commands seen for it. */
  private readonly attempts: Uint8Array;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  private constructor(private readonly options: SoakServerOptions) {
    this.commits = new Uint8Array(options.messages);
    this.attempts = new Uint8Array(options.messages);
    this.server = net.createServer((socket) => this.serve(socket));
  }

  static async start(options: SoakServerOptions): Promise<SoakServer> {
    const server = new SoakServer(options);
    await new Promise<void>((resolve) => server.server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The fault at `step` for these keys, or undefined for the step's normal answer. */
  private fault(step: Step, ...keys: readonly (string | number)[]): { action: Action; label: string } | undefined {
    let r = draw(this.options.seed, step, ...keys);
    const scale = this.options.faultScale ?? 1;
    for (const [p, action, label] of TABLES[step]) {
      if (r < p * scale) {
        const key = `${step} ${label}`;
        this.faults.set(key, (this.faults.get(key) ?? 0) + 1);
        return { action, label };
      }
      r -= p * scale;
    }
    return undefined;
  }

  private commit(id: number, body: Buffer): void {
    this.commits[id] = (this.commits[id] ?? 0) + 1;
    if (!body.equals(this.options.bodyOf(id))) this.corrupt.push(id);
  }

  private serve(socket: net.Socket): void {
    const conn = this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    new SoakSession(this.hooks(), socket, conn).start();
  }

  /** For SoakSession: draws, the fault hook, the attempt counter, commits and violations. */
  private hooks(): SessionHooks {
    return {
      messages: this.options.messages,
      draw: (...keys) => draw(this.options.seed, ...keys),
      fault: (step, ...keys) => this.fault(step, ...keys),
      attempt: (id) => (this.attempts[id] = (this.attempts[id] ?? 0) + 1),
      commit: (id, body) => this.commit(id, body),
      violation: (what) => this.violations.push(what),
    };
  }
}

interface SessionHooks {
  readonly messages: number;
  draw(...keys: readonly (string | number)[]): number;
  fault(step: Step, ...keys: readonly (string | number)[]): { action: Action; label: string } | undefined;
  attempt(id: number): number;
  commit(id: number, body: Buffer): void;
  violation(what: string): void;
}

/** One transaction as the server sees it. */
interface Txn {
  readonly id: number;
  readonly attempt: number;
  accepted: number;
  rcpts: number;
  /** Body bytes after which the connection is cut (mid-body fault), if any; drawn when the body starts. */
  cutAt?: { readonly bytes: number; readonly action: Action };
  bodyStarted: boolean;
  readonly body: Buffer[];
  size: number;
}

/** One connection: reads commands (pipelined) and body bytes in order, answers or cuts. */
class SoakSession {
  private buffer: Buffer = Buffer.alloc(0);
  private mode: 'command' | 'data' | { readonly bdat: number; readonly last: boolean } = 'command';
  private txn: Txn | undefined;
  /** The connection was cut or stalled: nothing more is read. */
  private ended = false;
  private rsets = 0;
  private readonly chunking: boolean;
  private out: string[] = [];

  constructor(
    private readonly hooks: SessionHooks,
    private readonly socket: net.Socket,
    private readonly conn: number,
  ) {
    // RFC 3030 on about a third of the connections: BDAT, stacked without waiting for replies.
    this.chunking = hooks.draw('chunking', conn) < 0.3;
  }

  start(): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (this.act(this.hooks.fault('greeting', this.conn), '220 soak.test ESMTP')) this.flush();
  }

  /**
   * Does a step's action (or the normal `reply`). Replies are batched and flushed once per read,
   * as a pipelining server answers a group. @return false once the connection is cut or stalled.
   */
  private act(fault: { action: Action } | undefined, reply: string): boolean {
    const action = fault?.action ?? { reply };
    if ('stall' in action) return this.stop();
    if ('reply' in action) this.out.push(`${action.reply}\r\n`);
    if (!('cut' in action)) return true;
    this.flush();
    if (action.cut === 'fin') this.socket.end();
    else this.socket.resetAndDestroy();
    return this.stop();
  }

  private stop(): boolean {
    this.ended = true;
    return false;
  }

  private flush(): void {
    if (this.out.length === 0 || this.socket.destroyed) return;
    this.socket.write(this.out.join(''));
    this.out = [];
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    // step() ends the session when it cuts or stalls the connection.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    while (!this.ended && this.step());
    this.flush();
  }

  /** Handles one unit of input (a line, or a BDAT chunk). @return whether there may be more to handle. */
  private step(): boolean {
    if (typeof this.mode === 'object') return this.bdatChunk(this.mode.bdat, this.mode.last);
    const eol = this.buffer.indexOf('\r\n');
    if (eol < 0) return false;
    const line = this.buffer.subarray(0, eol);
    this.buffer = this.buffer.subarray(eol + 2);
    if (this.mode === 'data') return this.dataLine(line);
    return this.command(line.toString('latin1'));
  }

  private command(line: string): boolean {
    const verb = line.replace(/ .*/s, '').toUpperCase();
    switch (verb) {
      case 'EHLO': {
        const ext = ['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES', ...(this.chunking ? ['CHUNKING'] : [])];
        const lines = ['soak.test', ...ext]
          .map((l, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${l}`)
          .join('\r\n');
        return this.act(this.hooks.fault('ehlo', this.conn), lines);
      }
      case 'MAIL':
        return this.mail(line);
      case 'RCPT':
        return this.rcpt();
      case 'DATA':
        return this.data();
      case 'BDAT':
        return this.bdat(line);
      case 'RSET':
        this.txn = undefined;
        return this.act(this.hooks.fault('rset', this.conn, this.rsets++), '250 2.0.0 soak: reset');
      case 'NOOP':
        return this.act(undefined, '250 2.0.0 soak: ok');
      case 'QUIT':
        return this.act(this.hooks.fault('quit', this.conn) ?? { action: fin('221 2.0.0 soak: bye') }, '');
      default:
        this.hooks.violation(`connection ${this.conn}: unexpected command ${JSON.stringify(line.slice(0, 40))}`);
        return this.act(undefined, '500 5.5.2 soak: unknown command');
    }
  }

  private mail(line: string): boolean {
    const match = SENDER.exec(line);
    if (this.txn) this.hooks.violation(`connection ${this.conn}: MAIL inside a transaction`);
    if (!match) return this.act(undefined, '501 5.1.7 soak: bad sender');
    const id = Number(match[1]);
    if (id >= this.hooks.messages) return this.act(undefined, '550 5.1.8 soak: unknown message');
    const attempt = this.hooks.attempt(id);
    const fault = this.hooks.fault('mail', id, attempt);
    if (!fault) this.txn = { id, attempt, accepted: 0, rcpts: 0, body: [], size: 0, bodyStarted: false };
    return this.act(fault, '250 2.1.0 soak: sender ok');
  }

  private rcpt(): boolean {
    const txn = this.txn;
    // RFC 2920 §3.1: pipelined after a refused MAIL, each RCPT is answered on its own.
    if (!txn) return this.act(undefined, '503 5.5.1 soak: need MAIL');
    const k = txn.rcpts++;
    const fault = this.hooks.fault('rcpt', txn.id, txn.attempt, k);
    if (!fault) txn.accepted++;
    return this.act(fault, `250 2.1.5 soak: recipient ${k} ok`);
  }

  private data(): boolean {
    const txn = this.txn;
    if (!txn || txn.accepted === 0) {
      this.txn = undefined;
      return this.act(undefined, txn ? '554 5.5.1 soak: no valid recipients' : '503 5.5.1 soak: need MAIL');
    }
    const fault = this.hooks.fault('data', txn.id, txn.attempt);
    if (fault) {
      this.txn = undefined;
      return this.act(fault, '');
    }
    this.planCut(txn);
    this.mode = 'data';
    return this.act(undefined, '354 3.0.0 soak: go ahead');
  }

  /** Mid-body cut: after a drawn number of body bytes (up to 256 KiB), or before the end if the body is shorter. */
  private planCut(txn: Txn): void {
    txn.bodyStarted = true;
    const fault = this.hooks.fault('body', txn.id, txn.attempt);
    if (fault)
      txn.cutAt = { bytes: Math.floor(this.hooks.draw('cut', txn.id, txn.attempt) * 256 * 1024), action: fault.action };
  }

  private dataLine(line: Buffer): boolean {
    const txn = this.txn as Txn;
    if (line.length === 1 && line[0] === 0x2e) {
      this.mode = 'command';
      return this.cutMidBody(txn, true) && this.final(txn);
    }
    // RFC 5321 §4.5.2: a leading dot was doubled by the client.
    const text = line[0] === 0x2e ? line.subarray(1) : line;
    txn.body.push(text, CRLF);
    txn.size += text.length + 2;
    return this.cutMidBody(txn, false);
  }

  /** Cuts the connection once the body reached its cut point (or at its end when it is shorter). */
  private cutMidBody(txn: Txn, atEnd: boolean): boolean {
    if (!txn.cutAt || (!atEnd && txn.size < txn.cutAt.bytes)) return true;
    this.txn = undefined;
    return this.act({ action: txn.cutAt.action }, '');
  }

  private bdat(line: string): boolean {
    const [, size, last] = line.split(' ');
    const bytes = Number(size);
    if (!Number.isInteger(bytes) || bytes < 0) return this.act(undefined, '501 5.5.4 soak: bad BDAT');
    const txn = this.txn;
    if (txn && txn.accepted > 0 && !txn.bodyStarted) this.planCut(txn);
    this.mode = { bdat: bytes, last: /^LAST$/i.test(last ?? '') };
    return true;
  }

  private bdatChunk(left: number, last: boolean): boolean {
    const take = Math.min(left, this.buffer.length);
    const txn = this.txn;
    if (txn && txn.accepted > 0) {
      txn.body.push(this.buffer.subarray(0, take));
      txn.size += take;
    }
    this.buffer = this.buffer.subarray(take);
    if (take < left) {
      this.mode = { bdat: left - take, last };
      if (txn && txn.accepted > 0) this.cutMidBody(txn, false);
      return false;
    }
    this.mode = 'command';
    // RFC 3030 §2: BDAT after a refused MAIL or with no accepted recipient is refused, its bytes read.
    if (!txn || txn.accepted === 0) {
      this.txn = undefined;
      return this.act(undefined, txn ? '554 5.5.1 soak: no valid recipients' : '503 5.5.1 soak: need MAIL');
    }
    if (!last) return this.cutMidBody(txn, false) && this.act(undefined, `250 2.0.0 soak: ${take} octets`);
    return this.cutMidBody(txn, true) && this.final(txn);
  }

  /** The end of the body: commit (or not) and answer, as the final step's draw says. */
  private final(txn: Txn): boolean {
    this.txn = undefined;
    const fault = this.hooks.fault('final', txn.id, txn.attempt);
    if (!fault || COMMITTED_CUTS.has(fault.label)) this.hooks.commit(txn.id, Buffer.concat(txn.body));
    return this.act(fault, '250 2.0.0 soak: queued');
  }
}

const CRLF = Buffer.from('\r\n');
