import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Browser, Page, chromium } from 'playwright-core';
import { Batch } from '../demos/web/batch';
import { Demo, startDemo } from '../demos/web/server';
import { MailServerOptions } from '../demos/web/mail-server';
import { defined } from '../spec/helpers/defined';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DEADLINE = 30_000;

interface RowView {
  readonly id: number;
  readonly status: string;
  readonly chips: readonly { readonly recipient: string; readonly state: string }[];
}

let browser: Browser | undefined;
let demo: Demo | undefined;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(() => browser?.close());

afterEach(async () => {
  await demo?.close();
  demo = undefined;
});

/** The demo and a 1280×800 page on it. */
async function open(mail: MailServerOptions = {}): Promise<{ demo: Demo; page: Page }> {
  demo = await startDemo({ mail });
  const page = await defined(browser, 'a browser (beforeAll)').newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(demo.url);
  return { demo, page };
}

async function startBatch(page: Page, size: number): Promise<void> {
  await page.fill('#size', String(size));
  await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('.row').length === n, size, { timeout: DEADLINE });
}

/** Resolves when the page shows the batch over: no row pending, the counts drawn. */
async function untilFinished(page: Page): Promise<void> {
  await page.waitForFunction(
    () =>
      document.body.dataset.batch === 'done' &&
      document.querySelector('.row[data-status="pending"]') === null &&
      document.querySelector('[data-count="pending"]')?.textContent === '0',
    undefined,
    { timeout: DEADLINE },
  );
}

function rows(page: Page): Promise<RowView[]> {
  return page.$$eval('.row', (elements) =>
    elements.map((row) => ({
      id: Number((row as HTMLElement).dataset.id),
      status: (row as HTMLElement).dataset.status ?? '',
      chips: [...row.querySelectorAll<HTMLElement>('.chip')].map((c) => ({
        recipient: c.dataset.recipient ?? '',
        state: c.dataset.state ?? '',
      })),
    })),
  );
}

function counts(page: Page): Promise<Record<string, number>> {
  return page.$$eval('[data-count]', (elements) =>
    Object.fromEntries(elements.map((e) => [(e as HTMLElement).dataset.count ?? '', Number(e.textContent)] as const)),
  );
}

/** The outcomes the server's stream reported, by id and tallied like the page's counts. */
function serverView(batch: Batch): { statuses: Map<number, string>; counts: Record<string, number> } {
  const statuses = new Map<number, string>();
  const tally: Record<string, number> = {
    pending: 0,
    sent: 0,
    refused: 0,
    failed: 0,
    'possibly-delivered': 0,
    cancelled: 0,
  };
  for (const m of batch.messages) {
    const status = batch.outcomes.get(m.id)?.status ?? 'pending';
    statuses.set(m.id, status);
    tally[status] = (tally[status] ?? 0) + 1;
  }
  return { statuses, counts: tally };
}

/** Holds every MAIL FROM after the first `passing` until `release`: the batch stops mid-way, for as long as the test needs. */
function valve(passing: number): { beforeMail: () => Promise<void>; release: () => void } {
  let passed = 0;
  let release = (): void => undefined;
  const opened = new Promise<void>((resolve) => (release = resolve));
  return { beforeMail: () => (passed++ < passing ? Promise.resolve() : opened), release: () => release() };
}

/** Whether what the page shows per message is what the server reported and the SMTP server received. */
function expectAgreement(view: RowView[], demo: Demo, batch: Batch): void {
  const server = serverView(batch);
  expect(new Map(view.map((r) => [r.id, r.status]))).toEqual(server.statuses);
  const received = new Map(
    demo.mail.received.filter((r) => r.id.startsWith(`${batch.id}/`)).map((r) => [Number(r.id.split('/')[1]), r.to]),
  );
  const sentIds = view.filter((r) => r.status === 'sent').map((r) => r.id);
  expect([...received.keys()].sort((a, b) => a - b)).toEqual(sentIds);
  for (const row of view.filter((r) => r.status === 'sent')) {
    expect(row.chips.filter((c) => c.state === 'delivered').map((c) => c.recipient)).toEqual(received.get(row.id));
  }
}

describe('the web demo in Chromium', () => {
  it('shows every message of a batch of 50 ending as the server reported and the SMTP server received', async () => {
    const { demo, page } = await open();
    await startBatch(page, 50);
    await untilFinished(page);
    const batch = defined(demo.batches[0], 'a batch');
    expect(batch.done).toBe(true);
    expect(batch.outcomes.size).toBe(50);
    expect(await counts(page)).toEqual(serverView(batch).counts);
    const view = await rows(page);
    expectAgreement(view, demo, batch);
    // Every chip is final: a 5xx refused, a 4xx deferred (the others took the message), or delivered.
    for (const chip of view.flatMap((r) => r.chips))
      expect(['delivered', 'refused', 'deferred', 'cancelled']).toContain(chip.state);
    expect(view.some((r) => r.chips.some((c) => c.state === 'refused'))).toBe(true);
    await snap(page, 'web-demo.png');
  });

  it('cancels a running message, a waiting one, then the rest of the batch, and leaves no row pending', async () => {
    const gate = valve(10);
    const { demo, page } = await open({ beforeMail: gate.beforeMail, deferRate: 0 });
    await startBatch(page, 50);
    await page.waitForFunction(
      () => document.querySelectorAll('.row:not([data-status="pending"])').length === 10,
      undefined,
      { timeout: DEADLINE },
    );
    // One held on a connection (its MAIL FROM unanswered), one still waiting its turn in mergeMap's buffer.
    const held = await page.$eval('.row[data-status="pending"]', (row) => Number((row as HTMLElement).dataset.id));
    for (const id of [held, 49]) {
      await page.click(`.row[data-id="${id}"] .cancel`);
      await page.waitForSelector(`.row[data-id="${id}"][data-status="cancelled"]`, { timeout: DEADLINE });
    }
    await page.waitForFunction(
      () =>
        document.querySelector('[data-count="cancelled"]')?.textContent === '2' &&
        document.querySelector('[data-count="pending"]')?.textContent === '38',
      undefined,
      { timeout: DEADLINE },
    );
    await page.click('#cancel-all');
    await untilFinished(page);
    gate.release();
    await snap(page, 'web-demo-cancelled.png');
    const batch = defined(demo.batches[0], 'a batch');
    expect(await counts(page)).toEqual({ ...serverView(batch).counts, cancelled: 40 });
    expectAgreement(await rows(page), demo, batch);
  });

  it('catches up with a running batch after a reload', async () => {
    const gate = valve(10);
    const { demo, page } = await open({ beforeMail: gate.beforeMail, deferRate: 0 });
    await startBatch(page, 50);
    await page.waitForFunction(
      () => document.querySelectorAll('.row:not([data-status="pending"])').length === 10,
      undefined,
      { timeout: DEADLINE },
    );
    await page.reload();
    const batch = defined(demo.batches[0], 'a batch');
    // Held mid-batch: the page rebuilds from the log what it showed before, 10 done and 40 pending.
    await page.waitForFunction(
      () => document.querySelectorAll('.row:not([data-status="pending"])').length === 10,
      undefined,
      { timeout: DEADLINE },
    );
    expect(batch.done).toBe(false);
    expect(new Map((await rows(page)).map((r) => [r.id, r.status]))).toEqual(serverView(batch).statuses);
    await snap(page, 'web-demo-running.png');
    gate.release();
    await untilFinished(page);
    expect(await counts(page)).toEqual(serverView(batch).counts);
    expectAgreement(await rows(page), demo, batch);
  });
});

describe('the web demo API', () => {
  beforeEach(async () => {
    demo = await startDemo();
  });

  it.each([
    [{ size: 0 }, 400],
    [{ size: 501 }, 400],
    [{ size: 2.5 }, 400],
    [{ size: '5' }, 400],
    [{ size: 5, extra: 1 }, 400],
    [[5], 400],
  ])('refuses the batch %j with %i', async (body, status) => {
    expect((await post(demo!, '/api/batches', body)).status).toBe(status);
    expect(demo!.batches).toHaveLength(0);
  });

  it('refuses a body that is not JSON, too large, or from another origin', async () => {
    expect((await post(demo!, '/api/batches', { size: 1 }, { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post(demo!, '/api/batches', { size: 1, pad: 'x'.repeat(2000) })).status).toBe(413);
    expect((await post(demo!, '/api/batches', { size: 1 }, { origin: 'http://evil.example' })).status).toBe(403);
    expect((await post(demo!, '/api/batches', { size: 1 }, { host: 'evil.example' })).status).toBe(421);
    expect(demo!.batches).toHaveLength(0);
  });

  it('checks the ids of a cancel, and refuses a second batch while one runs', async () => {
    const gate = { status: (await post(demo!, '/api/batches', { size: 3 })).status };
    expect(gate.status).toBe(201);
    expect((await post(demo!, '/api/batches', { size: 3 })).status).toBe(409);
    expect((await post(demo!, '/api/batches/zz/cancel', {})).status).toBe(404);
    expect((await post(demo!, '/api/batches/1/cancel', { message: 3 })).status).toBe(400);
    expect((await post(demo!, '/api/batches/1/cancel', { message: -1 })).status).toBe(400);
    expect((await post(demo!, '/api/batches/1/cancel', { message: 2 })).status).toBe(202);
  });
});

/** A screenshot under build/ (git-ignored), to look at: the page at 1280×800. */
async function snap(page: Page, name: string): Promise<void> {
  mkdirSync('build', { recursive: true });
  await page.screenshot({ path: join('build', name) });
}

/** A POST by node:http, which (unlike fetch) lets the test set Host. */
function post(
  demo: Demo,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, demo.url),
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, timeout: DEADLINE },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
