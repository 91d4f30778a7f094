// The panels: each draws from the store when its part is dirty. Text goes in with
// `textContent` only: task names, reasons and metrics come from producers.

import { drawLines } from './chart.js';

const STATES = ['PENDING', 'RECEIVED', 'STARTED', 'PROGRESS', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED', 'REJECTED'];
const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
/** Samples kept for the chart (one per second: two minutes). */
const HISTORY = 120;
/** Notifications kept in the drawer. */
const MAX_NOTES = 100;
/** How long a toast stays. */
const TOAST_MS = 5000;
/** Toasts on screen at once (a burst of failures must not bury the page). */
const MAX_TOASTS = 4;

let table = null;
let actions = null;
let storeRef = null;
const filter = { search: '', state: '', queue: '' };

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.entries(props).forEach(([k, v]) => {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  });
  children.forEach((c) => e.append(c));
  return e;
}

/**
 * Puts `child` at position `i` of `parent`, moving it only when it is not there already:
 * re-inserting a node detaches it too, and a press that began on it then never becomes
 * a click (panels redraw many times a second).
 */
function placeAt(parent, child, i) {
  if (parent.children[i] !== child) parent.insertBefore(child, parent.children[i] || null);
}

export function init(store, act) {
  storeRef = store;
  actions = act;
  table = act.table($('task-list'), fillRow);
  STATES.forEach((s) => $('state-filter').append(el('option', { value: s, textContent: s })));
  const refilter = () => {
    filter.search = $('search').value.trim().toLowerCase();
    filter.state = $('state-filter').value;
    filter.queue = $('queue-filter').value;
    store.dirty.add('tasks');
    draw(store);
  };
  ['search', 'state-filter', 'queue-filter'].forEach((id) => $(id).addEventListener('input', refilter));
  $('load-older').addEventListener('click', () => act.loadOlder(filter));
  $('bell').addEventListener('click', () => {
    $('notes').hidden = !$('notes').hidden;
  });
  $('notes-read').addEventListener('click', () => {
    store.notes.forEach((n) => { n.read = true; });
    drawNotes();
  });
  $('notes-desktop').addEventListener('click', () => window.Notification?.requestPermission());
}

/** Redraws the dirty panels (called once per animation frame). */
export function draw(store) {
  const d = store.dirty;
  if (d.has('tasks')) {
    drawTasks(store);
    drawJobs(store);
    drawCounts(store);
  }
  if (d.has('queues') || d.has('breakers')) {
    drawQueues(store);
    drawBreakers(store);
  }
  if (d.has('workers')) drawWorkers(store);
  if (d.has('metrics')) drawMetrics(store);
  d.clear();
  const s = window.vigil?.stats;
  if (s) $('stats').textContent = `${s.received} events · ${s.duplicates} dup · ${s.reconnects} reconnects`;
}

// ---- connection indicator ------------------------------------------------------------

const MODE_TEXT = { live: 'Live', polling: 'Polling', offline: 'Offline' };

export function connection({ mode, transport, detail }) {
  const c = $('conn');
  c.dataset.mode = mode;
  c.dataset.transport = transport || '';
  $('conn-mode').textContent = MODE_TEXT[mode];
  $('conn-detail').textContent = detail;
}

// ---- tasks ---------------------------------------------------------------------------

function visibleTasks(store) {
  const { search, state, queue } = filter;
  const rows = [];
  for (const t of store.tasks.values()) {
    if (state && t.state !== state) continue;
    if (queue && t.queue !== queue) continue;
    if (search && ![t.id, t.name, t.worker].some((v) => v && String(v).toLowerCase().includes(search))) continue;
    rows.push(t);
  }
  return rows.sort((a, b) => (b.state_at ?? 0) - (a.state_at ?? 0));
}

function drawTasks(store) {
  const rows = visibleTasks(store);
  table.setRows(rows);
  table.render();
  // Shown of loaded, then what the server holds (its counters: the page loads only the
  // newest tasks, and a cluster's day is far more than a page should hold).
  const stored = store.counts && Object.values(store.counts).reduce((a, b) => a + b, 0);
  $('task-count').textContent = `${rows.length} of ${store.tasks.size} loaded`
    + (store.counts ? ` · ${stored} stored` : '');
  const more = store.older.get(`${filter.state}|${filter.queue}`);
  $('load-older').hidden = more === null || filter.search !== '';
  $('older-note').textContent = more === null ? 'all loaded' : 'the server holds more';
  const queues = new Set([...store.queues.keys()]);
  store.tasks.forEach((t) => t.queue && queues.add(t.queue));
  const sel = $('queue-filter');
  const have = new Set([...sel.options].map((o) => o.value));
  [...queues].sort().forEach((q) => have.has(q) || sel.append(el('option', { value: q, textContent: q })));
}

/**
 * Writes task `t` into `row`. The cells are made once per row element and updated in
 * place: rows are redrawn many times a second, and a button replaced between mouse-down
 * and mouse-up would swallow the click.
 */
function fillRow(t, row) {
  if (!row.firstChild) {
    const revoke = el('button', { class: 'ghost small', textContent: 'Revoke' });
    revoke.onclick = () => actions.revoke(row.dataset.id);
    const name = el('strong', { title: 'open the task' });
    name.onclick = () => actions.openTask(row.dataset.id);
    row.append(el('span', { class: 'badge' }),
      el('span', { class: 'name' }, name, ' ', el('code')),
      el('span'), el('span'), progressBar(0), el('span'), revoke);
  }
  row.dataset.id = t.id;
  row.dataset.state = t.state;
  row.classList.toggle('pending', !!t.pending);
  const [badge, name, queue, worker, bar, time, revoke] = row.children;
  badge.className = `badge s-${t.state}`;
  badge.textContent = t.pending ? `${t.state}…` : t.state;
  name.title = t.exception || t.id;
  name.firstChild.textContent = t.name || '(unnamed)';
  name.lastChild.textContent = t.id;
  queue.textContent = t.queue || '—';
  worker.textContent = t.worker || '—';
  const pct = Math.round(t.progress ?? (t.state === 'SUCCESS' ? 100 : 0));
  setBar(bar, pct);
  time.textContent = runtime(t);
  revoke.hidden = storeRef.claims.role !== 'admin' || FINAL.has(t.state);
  revoke.title = `revoke ${t.id}`;
}

function setBar(bar, pct) {
  bar.title = `${pct}%`;
  bar.firstChild.style.width = `${Math.min(100, Math.max(0, pct))}%`;
}

function progressBar(pct) {
  const bar = el('span', { class: 'bar' }, el('i'));
  setBar(bar, pct);
  return bar;
}

function runtime(t) {
  if (t.runtime != null) return secs(t.runtime);
  if (t.started_at && !FINAL.has(t.state)) return secs(Date.now() / 1000 - t.started_at);
  return '—';
}

function secs(s) {
  if (!Number.isFinite(s) || s < 0) return '—';
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} m`;
}

/** Counts by state over every task the server holds (refreshed with the queues), or
 * over those in the page until the server's arrive. */
function drawCounts(store) {
  const counts = Object.fromEntries(STATES.map((s) => [s, store.counts?.[s] ?? 0]));
  if (!store.counts) store.tasks.forEach((t) => { counts[t.state] += 1; });
  const box = $('counts');
  if (!box.children.length) {
    // Built once and updated in place, so a click never lands on a replaced element.
    // A click on a count filters the table by that state (again: all states).
    box.append(...STATES.map((s) => {
      const card = el('button', { class: `count s-${s}`, 'data-state': s, title: `show ${s} tasks` },
        el('b'), el('span', { textContent: s }));
      card.onclick = () => {
        $('state-filter').value = filter.state === s ? '' : s;
        $('state-filter').dispatchEvent(new Event('input'));
      };
      return card;
    }));
  }
  [...box.children].forEach((card) => {
    const s = card.dataset.state;
    card.firstChild.textContent = String(counts[s]);
    card.classList.toggle('active', filter.state === s);
  });
}

// ---- batch jobs ----------------------------------------------------------------------

function drawJobs(store) {
  const jobs = [...store.tasks.values()]
    .filter((t) => t.totalBatches)
    .sort((a, b) => (b.state_at ?? 0) - (a.state_at ?? 0))
    .slice(0, 6);
  if (!jobs.length) return $('jobs').replaceChildren(el('p', { class: 'muted', textContent: 'No batch jobs yet.' }));
  return $('jobs').replaceChildren(...jobs.map((j) => {
    const done = j.completedBatches ?? 0;
    const pct = Math.round(j.progress ?? (100 * done) / j.totalBatches);
    const eta = FINAL.has(j.state) ? j.state.toLowerCase()
      : j.estimatedTimeRemaining != null ? `ETA ${secs(j.estimatedTimeRemaining)}` : 'ETA —';
    return el('div', { class: 'job', 'data-id': j.id, 'data-state': j.state },
      el('div', { class: 'job-head' },
        el('strong', { textContent: j.name || j.id }),
        el('span', { class: `badge s-${j.state}`, textContent: j.state })),
      progressBar(pct),
      el('div', { class: 'muted small', textContent: `${done} / ${j.totalBatches} batches · ${pct}% · ${eta}` }));
  }));
}

// ---- queues and the chart ------------------------------------------------------------

/** Takes one sample of every queue for the chart (called every second). */
export function sample(store) {
  const point = { t: Date.now(), depth: {}, rate: 0 };
  store.queues.forEach((q, name) => {
    point.depth[name] = q.depth ?? 0;
    point.rate += q.throughput ?? 0;
  });
  store.history.push(point);
  if (store.history.length > HISTORY) store.history.shift();
  drawChart(store);
}

function drawChart(store) {
  const names = [...store.queues.keys()].sort();
  drawLines($('depth-chart'), 'queue depth', names.map((n) => ({
    label: n, values: store.history.map((p) => p.depth[n] ?? 0),
  })));
  drawLines($('rate-chart'), 'throughput (tasks/min, all queues)', [{
    label: 'tasks/min', values: store.history.map((p) => p.rate),
  }]);
}

function drawQueues(store) {
  const head = el('tr', {}, ...['queue', 'depth', 'active', 'done', 'failed', 'per min', 'avg wait', 'consumers', 'breaker']
    .map((h) => el('th', { textContent: h })));
  const rows = [...store.queues.values()].sort((a, b) => a.name.localeCompare(b.name)).map((q) => {
    const b = store.breakers.get(q.name);
    return el('tr', { 'data-queue': q.name },
      ...[q.name, q.depth, q.active, q.succeeded, q.failed, fmt(q.throughput), q.avg_wait != null ? secs(q.avg_wait) : '—', q.consumers]
        .map((v) => el('td', { textContent: v ?? '—' })),
      el('td', {}, el('span', { class: `badge b-${b?.state || 'closed'}`, textContent: b?.state || 'closed' })));
  });
  $('queues').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
}

function fmt(n) {
  return Number.isFinite(n) ? (Math.round(n * 10) / 10).toString() : '—';
}

// ---- circuit breakers ----------------------------------------------------------------

function drawBreakers(store) {
  const names = [...new Set([...store.queues.keys(), ...store.breakers.keys()])].sort();
  const box = $('breakers');
  const cards = new Map([...box.children].map((c) => [c.dataset.queue, c]));
  names.forEach((q, i) => {
    // One card per queue, kept across redraws (see fillRow for why).
    const card = cards.get(q) || breakerCard(q, store.claims.role === 'admin');
    const b = store.breakers.get(q) || { state: 'closed', metadata: {} };
    const open = b.state !== 'closed';
    card.dataset.state = b.state;
    const badge = card.querySelector('.badge');
    badge.className = `badge b-${b.state}`;
    badge.textContent = b.state.toUpperCase();
    const reason = b.metadata?.reason;
    card.querySelector('.reason').textContent = open ? reason || 'refusing new tasks'
      : reason ? `accepting tasks (last: ${reason})` : 'accepting tasks';
    const btn = card.querySelector('button');
    if (btn) {
      btn.className = open ? '' : 'danger';
      btn.textContent = open ? 'Close breaker' : 'Open breaker';
      btn.disabled = false;
    }
    placeAt(box, card, i); // in name order
  });
}

function breakerCard(q, admin) {
  const card = el('div', { class: 'breaker', 'data-queue': q },
    el('div', { class: 'job-head' }, el('strong', { textContent: q }), el('span', { class: 'badge' })),
    el('div', { class: 'muted small reason' }));
  if (admin) {
    const btn = el('button');
    btn.onclick = () => {
      btn.disabled = true;
      actions.toggleBreaker(q, card.dataset.state === 'closed');
    };
    card.append(btn);
  }
  return card;
}

// ---- workers -------------------------------------------------------------------------

const WORKER_COLUMNS = ['worker', 'status', 'heartbeat', 'cpu %', 'mem MiB', 'active', 'processed', 'failed'];

function drawWorkers(store) {
  const now = Date.now() / 1000;
  const grid = $('workers');
  if (!grid.tBodies.length) {
    const head = el('tr', {}, ...WORKER_COLUMNS.map((h) => el('th', { textContent: h })));
    grid.replaceChildren(el('thead', {}, head), el('tbody'));
  }
  const body = grid.tBodies[0];
  const stale = new Map([...body.rows].map((r) => [r.dataset.worker, r]));
  [...store.workers.values()].sort((a, b) => a.id.localeCompare(b.id)).forEach((w, i) => {
    // One row per worker, kept across redraws (redrawn every second; see placeAt).
    const row = stale.get(w.id) || workerRow(w.id);
    stale.delete(w.id);
    const age = w.heartbeat_at ? now - w.heartbeat_at : null;
    // Health: the server's status, plus "late" when heartbeats stop before it says offline.
    const health = w.status === 'offline' ? 'offline' : age != null && age > 15 ? 'late' : w.status;
    row.dataset.health = health;
    const [, status, heartbeat, ...figures] = row.cells;
    status.firstChild.className = `badge w-${health}`;
    status.firstChild.textContent = health;
    heartbeat.textContent = age == null ? '—' : `${Math.max(0, Math.round(age))} s ago`;
    [fmt(w.cpu), fmt(w.memory), w.active, w.processed, w.failed]
      .forEach((v, j) => { figures[j].textContent = v ?? '—'; });
    placeAt(body, row, i); // in id order
  });
  stale.forEach((row) => row.remove());
}

function workerRow(id) {
  const name = el('td', { textContent: id, title: 'open the worker' });
  name.onclick = () => actions.openWorker(id);
  return el('tr', { 'data-worker': id }, name, el('td', {}, el('span')),
    ...WORKER_COLUMNS.slice(2).map(() => el('td')));
}

// ---- system metrics (admins) ---------------------------------------------------------

function drawMetrics(store) {
  if (store.claims.role !== 'admin' || !store.metrics) return $('metrics').replaceChildren();
  const entries = Object.entries(store.metrics).filter(([, v]) => typeof v !== 'object');
  return $('metrics').replaceChildren(...entries.flatMap(([k, v]) => [
    el('dt', { textContent: k }), el('dd', { textContent: typeof v === 'number' ? fmt(v) : String(v) })]));
}

// ---- notifications (seed 003) --------------------------------------------------------

/**
 * A task changed state live. Jobs notify when they finish or fail (with a toast); other
 * tasks when they fail, in the drawer only: a busy queue must not bury the page in toasts.
 */
export function notifyTask(t) {
  const job = !!t.totalBatches;
  const name = t.name || t.id;
  if (t.state === 'FAILURE') note('error', `${job ? 'Job' : 'Task'} failed: ${name}`, t.exception || t.id, job);
  else if (t.state === 'SUCCESS' && job) note('success', `Job finished: ${name}`, `${t.totalBatches} batches`, true);
}

export function notifyBreaker(b) {
  const q = b.metadata?.queue || 'celery';
  note(b.state === 'closed' ? 'success' : 'error', `Breaker ${q} ${b.state}`, b.metadata?.reason || '');
}

function note(kind, title, body, withToast = true) {
  storeRef.notes.unshift({ kind, title, body, at: new Date(), read: false });
  storeRef.notes.length = Math.min(storeRef.notes.length, MAX_NOTES);
  if (withToast) toast(kind, title);
  drawNotes();
  if (window.Notification?.permission === 'granted' && document.hidden) {
    new Notification(title, { body }); // eslint-disable-line no-new
  }
}

function drawNotes() {
  const unread = storeRef.notes.filter((n) => !n.read).length;
  $('bell-count').textContent = String(unread);
  $('notes-list').replaceChildren(...storeRef.notes.map((n) => el('li', { class: `note ${n.kind}${n.read ? ' read' : ''}` },
    el('strong', { textContent: n.title }), el('span', { class: 'muted small', textContent: ` ${n.at.toLocaleTimeString()} ${n.body}` }))));
}

export function toast(kind, text) {
  const box = $('toasts');
  while (box.children.length >= MAX_TOASTS) box.firstChild.remove();
  const t = el('div', { class: `toast ${kind}`, textContent: text });
  box.append(t);
  setTimeout(() => t.remove(), TOAST_MS);
}
