// The page: the server's events for the current batch, folded into the rows as they come.
// A reload gets the batch's whole log again (starting with its `batch` event), so it rebuilds the same view.
'use strict';
const { Observable, Subject, auditTime, merge, filter } = rxjs;

const $ = (selector) => document.querySelector(selector);
const FINAL = new Set(['sent', 'refused', 'failed', 'possibly-delivered', 'cancelled']);
const OUTCOMES = ['pending', 'sent', 'refused', 'failed', 'possibly-delivered', 'cancelled'];
const STATUS_TEXT = {
  pending: 'queued',
  sent: 'sent',
  refused: 'refused',
  failed: 'failed',
  'possibly-delivered': 'possibly delivered',
  cancelled: 'cancelled',
};

/** The server's events, one JSON object each; the EventSource reconnects by itself. */
const events$ = new Observable((subscriber) => {
  const source = new EventSource('/api/events');
  source.onmessage = (e) => subscriber.next(JSON.parse(e.data));
  return () => source.close();
});

let batch; // { id, running, messages: Map<id, { row, chips: Map<recipient, element>, status, attempt }> }
const changed$ = new Subject();

const handlers = {
  batch(e) {
    batch = { id: e.batch, running: true, messages: new Map() };
    const rows = $('#rows');
    rows.replaceChildren(...e.messages.map((m) => makeRow(m)));
    $('#empty').hidden = true;
    $('#throttle').textContent = `${e.rateLimit}/s`;
  },
  recipient(e) {
    const m = batch.messages.get(e.id);
    if (e.attempt < m.attempt) return;
    setChip(m.chips.get(e.recipient), e.status, `${e.recipient}: ${e.code}`);
    setStatus(m, 'pending', 'sending');
  },
  retry(e) {
    const m = batch.messages.get(e.id);
    m.attempt = e.attempt + 1;
    m.row.querySelector('.attempt').textContent = `try ${m.attempt}`;
    setStatus(m, 'pending', `retry in ${e.delayMs} ms`);
    m.row.title = e.reason;
  },
  outcome(e) {
    const m = batch.messages.get(e.id);
    for (const chip of m.chips.values()) {
      if (e.status === 'sent' && chip.dataset.state === 'accepted') setChip(chip, 'delivered');
      else if (chip.dataset.state === 'pending' || (e.status !== 'sent' && chip.dataset.state === 'accepted'))
        setChip(chip, 'cancelled');
    }
    if (e.reason) m.row.title = e.reason;
    setStatus(m, e.status, STATUS_TEXT[e.status]);
  },
  stats(e) {
    $('#rate').textContent = e.messagesPerSecond.toFixed(1);
    $('#connections').textContent = e.connections;
    $('#running').textContent = e.running;
    $('#queued').textContent = e.queued;
    // The pool's adaptive throttle: a level above 0 means the server asked it to slow down.
    $('#throttle').textContent =
      e.throttleLevel > 0 ? `level ${e.throttleLevel} · ${e.rateLimit}/s` : `${e.rateLimit}/s`;
  },
  done() {
    batch.running = false;
    document.body.dataset.batch = 'done';
  },
};

function makeRow(m) {
  const row = $('#row').content.firstElementChild.cloneNode(true);
  row.dataset.id = m.id;
  row.querySelector('.id').textContent = `#${m.id}`;
  const chips = new Map();
  for (const recipient of m.to) {
    const chip = document.createElement('span');
    chip.className = 'chip pending';
    chip.dataset.state = 'pending';
    chip.textContent = recipient.split('@')[0];
    chip.title = recipient;
    chip.dataset.recipient = recipient;
    chips.set(recipient, chip);
  }
  row.querySelector('.chips').append(...chips.values());
  row.querySelector('.cancel').onclick = () => post(`/api/batches/${batch.id}/cancel`, { message: m.id });
  batch.messages.set(m.id, { row, chips, status: 'pending', attempt: 1 });
  return row;
}

function setChip(chip, state, title) {
  chip.className = `chip ${state}`;
  chip.dataset.state = state;
  if (title) chip.title = title;
}

function setStatus(m, status, text) {
  m.status = status;
  m.row.dataset.status = status;
  m.row.querySelector('.status').textContent = text;
}

function renderCounts() {
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
  for (const m of batch ? batch.messages.values() : []) counts[FINAL.has(m.status) ? m.status : 'pending']++;
  for (const o of OUTCOMES) document.querySelector(`[data-count="${o}"]`).textContent = counts[o];
  const running = Boolean(batch && batch.running);
  $('#send').disabled = running;
  $('#cancel-all').disabled = !running;
  if (batch) document.body.dataset.batch = running ? 'running' : 'done';
}

async function post(url, body) {
  $('#notice').textContent = '';
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) $('#notice').textContent = (await res.json().catch(() => ({}))).error || `HTTP ${res.status}`;
}

events$.subscribe((e) => {
  handlers[e.type](e);
  changed$.next();
});
// Counts are recomputed at most every 100 ms, not once per event.
merge(changed$.pipe(auditTime(100)), changed$.pipe(filter(() => !batch.running))).subscribe(renderCounts);

$('#start').onsubmit = (e) => {
  e.preventDefault();
  post('/api/batches', { size: Number($('#size').value) });
};
$('#cancel-all').onclick = () => post(`/api/batches/${batch.id}/cancel`, {});
