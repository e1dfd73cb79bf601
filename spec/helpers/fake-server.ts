import * as net from 'node:net';
import * as tls from 'node:tls';
import { defined } from './defined';

/**
 * What the fake does with a command: a reply (one or more lines, CRLF added),
 * or an action. A function gets the command line and decides.
 */
export type Action =
  | string
  | { readonly raw: string | Buffer } // exact bytes, nothing added
  | { readonly close: true; readonly reply?: string; readonly reset?: boolean } // optionally reply, then close (RST if `reset`)
  | { readonly stall: true } // never answer
  | { readonly delayMs: number; readonly reply: string } // answer later; later replies wait behind it
  | { readonly after: Promise<unknown>; readonly reply: string } // answer once `after` settles; later replies wait
  | { readonly starttls: true; readonly reply?: string; readonly inject?: string }; // 220 (+ injected bytes), then TLS

export type Handler = Action | ((line: string, session: FakeSession) => Action | undefined);

export interface FakeScript {
  /** The greeting; `null`: never greet (stall). Default `220 fake.test ESMTP`. */
  readonly greeting?: string | null;
  /**
   * Handlers by upper-case verb (`EHLO`, `MAIL`, …); `.` is the end of DATA, `BDAT` each chunk;
   * `*` any other line (AUTH responses); `DATA-LINE` each line of a DATA body (only actions that close).
   */
  readonly handlers?: Readonly<Record<string, Handler>>;
  /** EHLO keywords after the first line; default PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES. */
  readonly extensions?: readonly string[];
  /** Queue replies from `holdRepliesFrom` (default MAIL) until this verb arrives, then send them in one write (proves pipelining). */
  readonly holdRepliesUntil?: string;
  readonly holdRepliesFrom?: string;
  /** Certificate and key for STARTTLS or implicit TLS. */
  readonly tls?: tls.SecureContextOptions;
  /** Speak TLS from the first byte. */
  readonly implicitTls?: boolean;
  /** Listen on this Unix socket path instead of 127.0.0.1. */
  readonly path?: string;
}

/** One client connection as the fake sees it. */
export interface FakeSession {
  /** Every byte received, in order (after TLS, the decrypted bytes). */
  readonly bytes: Buffer[];
  /** Each `data` event's size: how the client's writes arrived. */
  readonly chunks: Buffer[];
  /** Command lines received (not message data). */
  readonly commands: string[];
  /** Message bodies received via DATA (dot-stuffing kept, final dot removed) or BDAT. */
  readonly messages: Buffer[];
  /** Whether the session was upgraded with STARTTLS. */
  secure: boolean;
  /** The SNI name the client sent, when it spoke TLS. */
  servername?: string | false | null;
  closed: boolean;
}

const DEFAULT_EXTENSIONS = ['PIPELINING', '8BITMIME', 'SIZE 10485760', 'ENHANCEDSTATUSCODES'];

const DEFAULT_HANDLERS: Record<string, Handler> = {
  HELO: '250 fake.test',
  MAIL: '250 2.1.0 Ok',
  RCPT: '250 2.1.5 Ok',
  DATA: '354 End data with <CR><LF>.<CR><LF>',
  '.': '250 2.0.0 Ok: queued',
  BDAT: '250 2.0.0 Ok',
  RSET: '250 2.0.0 Ok',
  NOOP: '250 2.0.0 Ok',
  VRFY: '252 2.0.0 Cannot VRFY user',
  EXPN: '502 5.5.2 Error: command not recognized',
  HELP: '214 2.0.0 fake help',
  QUIT: { close: true, reply: '221 2.0.0 Bye' },
  STARTTLS: { starttls: true },
};

/**
 * A scripted SMTP server on 127.0.0.1 (ephemeral port) that records every
 * byte it receives. Replies are per verb; several replies produced by one
 * incoming packet leave in one write.
 */
export class FakeServer {
  readonly sessions: FakeSession[] = [];
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly script: FakeScript) {
    const onConnection = (socket: net.Socket): void => this.serve(socket, this.script.implicitTls === true);
    this.server = script.implicitTls
      ? tls.createServer({ ...script.tls }, onConnection)
      : net.createServer(onConnection);
  }

  static async start(script: FakeScript = {}): Promise<FakeServer> {
    const fake = new FakeServer(script);
    await new Promise<void>((resolve) =>
      script.path ? fake.server.listen(script.path, resolve) : fake.server.listen(0, '127.0.0.1', resolve),
    );
    return fake;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** The first (usually only) session. */
  get session(): FakeSession {
    return defined(this.sessions[0], 'a session on the fake server');
  }

  /** All bytes of a session as latin1 text, for assertions. */
  text(index = 0): string {
    return Buffer.concat(this.sessions[index]?.bytes ?? []).toString('latin1');
  }

  /** Resolves once a session's socket has closed. */
  closedSession(index = 0): Promise<void> {
    return this.until(() => this.sessions[index]?.closed === true);
  }

  /** Resolves once the session has received a command starting with `prefix`. */
  received(prefix: string, index = 0): Promise<void> {
    return this.until(() => this.sessions[index]?.commands.some((c) => c.toUpperCase().startsWith(prefix)) === true);
  }

  /**
   * Polls a condition on what the fake has seen (events on a socket we do not own). Gives up
   * after `ms`, so a test that waits for the wrong thing fails instead of keeping jest alive.
   */
  async until(condition: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`FakeServer.until: condition not met within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(initial: net.Socket, secure: boolean): void {
    const session: FakeSession = { bytes: [], chunks: [], commands: [], messages: [], secure, closed: false };
    if (initial instanceof tls.TLSSocket) session.servername = initial.servername;
    this.sessions.push(session);
    let socket = initial;
    this.sockets.add(socket);
    let pending: Buffer = Buffer.alloc(0);
    let mode:
      | { kind: 'command' }
      | { kind: 'data'; body: Buffer[] }
      | { kind: 'bdat'; left: number; last: boolean; body: Buffer[] } = { kind: 'command' };
    let out: Buffer[] = [];
    let held = false;
    let holdArmed = this.script.holdRepliesUntil !== undefined;
    let stalled = false;
    let upgrade: { inject: string | undefined } | undefined;

    const queue = (text: string | Buffer): void => {
      out.push(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
    };
    const flush = (): void => {
      if (held || out.length === 0 || socket.destroyed) return;
      socket.write(Buffer.concat(out));
      out = [];
    };
    const perform = (action: Action | undefined, verb: string): boolean => {
      if (action === undefined) action = `500 5.5.1 Unknown command ${verb}`;
      if (typeof action === 'string') queue(`${action.replace(/\r?\n/g, '\r\n')}\r\n`);
      else if ('raw' in action) queue(action.raw);
      else if ('stall' in action) stalled = true;
      else if ('delayMs' in action || 'after' in action) {
        // Later replies wait behind this one, as a real server answers in order.
        out.push(Buffer.from(`${action.reply}\r\n`));
        const release = held;
        held = true;
        const answer = (): void => {
          held = release;
          flush();
        };
        if ('after' in action) action.after.then(answer, answer);
        else {
          const timer = setTimeout(answer, action.delayMs);
          socket.once('close', () => clearTimeout(timer));
        }
      } else if ('close' in action) {
        if (action.reply) queue(`${action.reply}\r\n`);
        held = false;
        flush();
        if (action.reset) socket.resetAndDestroy();
        else socket.end();
        return false;
      } else if ('starttls' in action) {
        queue(`${action.reply ?? '220 2.0.0 Ready to start TLS'}\r\n${action.inject ?? ''}`);
        upgrade = { inject: action.inject };
        held = false;
        flush();
        return false;
      }
      return true;
    };
    const handle = (line: string): boolean => {
      session.commands.push(line);
      const verb = line.replace(/ .*/s, '').toUpperCase();
      if (holdArmed && verb === (this.script.holdRepliesFrom ?? 'MAIL')) {
        held = true;
        holdArmed = false;
      }
      if (verb === this.script.holdRepliesUntil) held = false;
      if (verb === 'EHLO' || verb === 'LHLO') {
        const custom = this.script.handlers?.[verb];
        if (custom === undefined) {
          const lines = ['fake.test', ...(this.script.extensions ?? DEFAULT_EXTENSIONS)];
          queue(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
          return true;
        }
      }
      const handler = this.script.handlers?.[verb] ?? DEFAULT_HANDLERS[verb] ?? this.script.handlers?.['*'];
      const action = typeof handler === 'function' ? handler(line, session) : handler;
      const goOn = perform(action, verb);
      if (verb === 'DATA' && typeof action === 'string' && action.startsWith('354')) mode = { kind: 'data', body: [] };
      if (verb === 'BDAT') {
        const [, size, last] = line.split(' ');
        mode = { kind: 'bdat', left: Number(size), last: /^LAST$/i.test(last ?? ''), body: [] };
      }
      return goOn;
    };
    const endOfData = (body: Buffer): boolean => {
      session.messages.push(body);
      mode = { kind: 'command' };
      const handler = this.script.handlers?.['.'] ?? DEFAULT_HANDLERS['.'];
      return perform(typeof handler === 'function' ? handler('.', session) : handler, '.');
    };

    const onData = (chunk: Buffer): void => {
      session.bytes.push(chunk);
      session.chunks.push(chunk);
      if (stalled) return;
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        if (mode.kind === 'bdat') {
          const take = Math.min(mode.left, pending.length);
          mode.body.push(pending.subarray(0, take));
          pending = pending.subarray(take);
          mode.left -= take;
          if (mode.left > 0) break;
          const { body } = mode;
          mode = { kind: 'command' };
          session.messages.push(Buffer.concat(body));
          continue;
        }
        const lf = pending.indexOf('\r\n');
        if (lf < 0) break;
        const line = pending.subarray(0, lf).toString('utf8');
        pending = pending.subarray(lf + 2);
        if (mode.kind === 'data') {
          if (line === '.') {
            if (!endOfData(Buffer.concat(mode.body))) break;
          } else {
            mode.body.push(Buffer.from(`${line}\r\n`, 'utf8'));
            const onLine = this.script.handlers?.['DATA-LINE'];
            if (onLine && !perform(typeof onLine === 'function' ? onLine(line, session) : onLine, 'DATA-LINE')) break;
          }
          continue;
        }
        // handle() sets `stalled` when the script says to stop reading.
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
        if (!handle(line) || stalled) break;
      }
      flush();
      if (upgrade) startTls();
    };
    const startTls = (): void => {
      upgrade = undefined;
      socket.off('data', onData);
      const secureSocket = new tls.TLSSocket(socket, { isServer: true, ...this.script.tls });
      socket = secureSocket;
      this.sockets.add(secureSocket);
      session.secure = true;
      secureSocket.once('secure', () => (session.servername = secureSocket.servername));
      secureSocket.on('data', onData);
      secureSocket.on('error', () => undefined);
    };

    socket.on('data', onData);
    socket.on('error', () => undefined);
    initial.on('close', () => {
      session.closed = true;
      this.sockets.delete(initial);
    });
    if (this.script.greeting !== null) {
      const greeting = this.script.greeting ?? '220 fake.test ESMTP';
      socket.write(`${greeting.replace(/\r?\n/g, '\r\n')}\r\n`);
    }
  }
}
