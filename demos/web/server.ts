import { readFile } from 'node:fs/promises';
import { IncomingMessage, ServerResponse, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { BehaviorSubject, Subscription, filter, merge, switchMap } from 'rxjs';
import { RetryPolicy, SMTPPool } from '../../lib';
import { Batch } from './batch';
import { MailServer, MailServerOptions, startMailServer } from './mail-server';

export interface DemoOptions {
  /** The HTTP port on 127.0.0.1; 0 (default) picks a free one. */
  readonly port?: number;
  /** Transactions started per second, across the pool. Default 40. */
  readonly rateLimit?: number;
  readonly mail?: MailServerOptions;
}

export interface Demo {
  readonly url: string;
  readonly mail: MailServer;
  readonly pool: SMTPPool;
  /** Every batch started, the last one current. */
  readonly batches: readonly Batch[];
  close(): Promise<void>;
}

/** The batch sizes a page may ask for. */
export const MAX_BATCH = 500;
const MAX_BODY_BYTES = 1024;
const RETRY: RetryPolicy = { attempts: 3, backoffMs: 200 };
const PUBLIC = join(__dirname, 'public');
const STATIC: Record<string, { readonly file: string; readonly type: string }> = {
  '/': { file: join(PUBLIC, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.css': { file: join(PUBLIC, 'app.css'), type: 'text/css; charset=utf-8' },
  '/app.js': { file: join(PUBLIC, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/rxjs.umd.min.js': {
    file: join(dirname(require.resolve('rxjs/package.json')), 'dist/bundles/rxjs.umd.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
};

/** A client error: its status and a message for the page. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The demo: an embedded SMTP server, a pool sending to it, and an HTTP server
 * on 127.0.0.1 with the page, a JSON API to start and cancel batches, and the
 * events of the current batch as Server-Sent Events.
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const rateLimit = options.rateLimit ?? 40;
  const mail = await startMailServer(options.mail);
  const pool = new SMTPPool({
    host: '127.0.0.1',
    port: mail.port,
    localHostname: 'demo.local',
    starttls: 'never',
    maxConnections: 4,
    rateLimit: { messages: rateLimit, perMs: 1000 },
  });
  const batches: Batch[] = [];
  const current$ = new BehaviorSubject<Batch | undefined>(undefined);
  const streams = new Set<Subscription>();

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (!res.headersSent) send(res, status, { error: err instanceof Error ? err.message : 'error' });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    checkHost(req, port());
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const route = `${req.method ?? ''} ${url.pathname}`;
    const page = STATIC[url.pathname];
    if (req.method === 'GET' && page) return serveFile(res, page.file, page.type);
    const cancel = /^POST \/api\/batches\/([a-z0-9]{1,16})\/cancel$/.exec(route)?.[1];
    if (route === 'GET /api/events') streamEvents(req, res);
    else if (route === 'POST /api/batches') startBatch(await readJson(req), res);
    else if (cancel !== undefined) cancelBatch(cancel, await readJson(req), res);
    else throw new HttpError(404, 'not found');
  }

  // Each page gets the current batch's log from the start, then its live events and stats;
  // a new batch replaces the old one on every open page.
  function streamEvents(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write('retry: 1000\n\n');
    const stream = current$
      .pipe(
        filter((batch): batch is Batch => batch !== undefined),
        switchMap((batch) => merge(batch.events$, batch.stats$)),
      )
      .subscribe((event) => res.write(`data: ${JSON.stringify(event)}\n\n`));
    streams.add(stream);
    req.on('close', () => {
      stream.unsubscribe();
      streams.delete(stream);
    });
  }

  function startBatch(body: Record<string, unknown>, res: ServerResponse): void {
    onlyKeys(body, ['size']);
    const size = body.size;
    if (!(Number.isInteger(size) && (size as number) >= 1 && (size as number) <= MAX_BATCH)) {
      throw new HttpError(400, `size must be an integer from 1 to ${MAX_BATCH}`);
    }
    if (current$.value && !current$.value.done) throw new HttpError(409, 'a batch is running');
    const batch = new Batch((batches.length + 1).toString(36), size as number, pool, RETRY, rateLimit);
    batches.push(batch);
    current$.next(batch);
    send(res, 201, { batch: batch.id });
  }

  function cancelBatch(id: string, body: Record<string, unknown>, res: ServerResponse): void {
    onlyKeys(body, ['message']);
    const batch = batches.find((b) => b.id === id);
    if (!batch) throw new HttpError(404, 'no such batch');
    const message = body.message;
    if (
      message !== undefined &&
      !(Number.isInteger(message) && (message as number) >= 0 && (message as number) < batch.messages.length)
    ) {
      throw new HttpError(400, 'message must be the id of a message of the batch');
    }
    batch.cancel(message as number | undefined);
    send(res, 202, {});
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (): number => (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port()}/`,
    mail,
    pool,
    batches,
    async close() {
      for (const batch of batches) batch.stop();
      for (const stream of streams) stream.unsubscribe();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      pool.destroy();
      await mail.close();
    },
  };
}

/** Only this server's own names: a page from elsewhere (DNS rebinding, a cross-site form) is turned away. */
function checkHost(req: IncomingMessage, port: number): void {
  const allowed = [`127.0.0.1:${port}`, `localhost:${port}`];
  if (!allowed.includes(req.headers.host ?? '')) throw new HttpError(421, 'wrong host');
  const origin = req.headers.origin;
  if (origin !== undefined && !allowed.some((host) => origin === `http://${host}`))
    throw new HttpError(403, 'wrong origin');
}

/** A small JSON object, sent as application/json (which a cross-site form cannot send without CORS). */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
    throw new HttpError(415, 'send application/json');
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_BODY_BYTES) throw new HttpError(413, 'body too large');
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError(400, 'body must be a JSON object');
  return body as Record<string, unknown>;
}

function onlyKeys(body: Record<string, unknown>, keys: readonly string[]): void {
  const extra = Object.keys(body).filter((k) => !keys.includes(k));
  if (extra.length > 0) throw new HttpError(400, `unexpected field ${extra.join(', ')}`);
}

async function serveFile(res: ServerResponse, file: string, type: string): Promise<void> {
  const content = await readFile(file);
  res.writeHead(200, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    // The page runs only its own scripts, and talks only to this server.
    'content-security-policy': "default-src 'self'; frame-ancestors 'none'",
  });
  res.end(content);
}

function send(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
