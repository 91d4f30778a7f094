// Vigil's dashboard: sign-in, the first paint from REST, then live updates from the
// hybrid client, applied to one in-memory store and drawn once per animation frame.
//
// - client.js: the WebSocket → SSE → long-poll client with resume.
// - table.js:  the virtualised task table.
// - views.js:  the panels (jobs, queues, breakers, workers, metrics, notifications).
// - chart.js:  the small queue chart.
// - details.js: the drawer with a task's or a worker's details and controls.

import { HybridClient } from './client.js';
import { VirtualTable } from './table.js';
import * as views from './views.js';
import * as details from './details.js';

const TOKEN_KEY = 'vigil.token';
/** Tasks fetched for the first paint (the API's maximum page). */
const INITIAL_TASKS = 1000;
/** Tasks kept in memory; beyond it the oldest finished ones are forgotten... */
const MAX_TASKS = 20000;
/** ...a thousand at a time, so the sort this takes is rare. */
const EVICT_SLACK = 1000;
/** How often queue statistics (throughput, waits) and the counts by state (over every
 * task the server holds, not only those in the page) are refetched. */
const QUEUE_REFRESH_MS = 3000;
/** Older tasks fetched per "Load older" click. */
const OLDER_PAGE = 500;
const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

/** Everything the page shows. Only data the API returned for this token gets here. */
export const store = {
  claims: null,
  token: null,
  tasks: new Map(),
  /** Tasks by state over everything the server holds (the snapshot's counters). */
  counts: null,
  /** Where "Load older" continues, per filter (`state|queue`): a cursor, or null at the end. */
  older: new Map(),
  workers: new Map(),
  queues: new Map(),
  breakers: new Map(),
  metrics: null,
  history: [], // queue samples for the chart
  notes: [],
  dirty: new Set(),
};

/** A refused API call: the status and the server's error message. */
class Refused extends Error {
  constructor(status, message) {
    super(`${status}: ${message}`);
    this.status = status;
  }
}

/** Calls the REST API with the token; JSON in, JSON out; throws `Refused` on an error. */
export async function api(path, { method = 'GET', body } = {}) {
  const resp = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${store.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await resp.json().catch(() => null);
  if (!resp.ok) {
    const msg = json?.error?.message || resp.statusText;
    if (resp.status === 401) signOut(`Your token was refused: ${msg}`);
    throw new Refused(resp.status, msg);
  }
  return json;
}

// ---- sign-in -------------------------------------------------------------------------

/** The token's claims (for the UI only; the server checks the signature). */
function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

function tokenFromUrl() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  // Keep the token out of the address bar and the history.
  history.replaceState(null, '', location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

function showLogin(message) {
  document.getElementById('app').hidden = true;
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = message || '';
  document.body.dataset.role = 'none';
}

function signOut(message) {
  localStorage.removeItem(TOKEN_KEY);
  window.vigil?.client?.stop();
  // Forget everything the old token could see before anything else is drawn.
  location.hash = '';
  sessionStorage.setItem('vigil.signout', message || '');
  location.reload();
}

async function signIn(token) {
  const claims = claimsOf(token);
  if (!claims || !claims.role) return showLogin('That is not a Vigil token.');
  if (claims.role === 'producer') {
    return showLogin('Producer tokens can only report events; sign in as a viewer or admin.');
  }
  if (claims.exp && claims.exp * 1000 < Date.now()) return showLogin('That token has expired.');
  store.token = token;
  store.claims = claims;
  let since;
  try {
    since = await loadSnapshot();
  } catch (e) {
    store.token = null;
    localStorage.removeItem(TOKEN_KEY);
    return showLogin(`Sign-in refused: ${e.message}`);
  }
  localStorage.setItem(TOKEN_KEY, token);
  document.body.dataset.role = claims.role;
  document.getElementById('who').textContent = `${claims.sub} · ${claims.role}`;
  document.getElementById('login').hidden = true;
  document.getElementById('app').hidden = false;
  start(since);
  return undefined;
}

// ---- data ----------------------------------------------------------------------------

/** The first paint (and the resync after a `reset`): returns the cursor to resume from. */
async function loadSnapshot() {
  const dash = await api('/api/v1/dashboard');
  // Fetched after the snapshot's cursor, so they are at least as new as it.
  const [tasks, jobs] = await Promise.all([
    api(`/api/v1/tasks?limit=${INITIAL_TASKS}`),
    api('/api/v1/jobs?limit=100'),
  ]);
  store.tasks.clear();
  [...dash.tasks, ...tasks.tasks, ...jobs.jobs].forEach((t) => upsertTask(t, false));
  store.counts = dash.counts;
  store.older = new Map([['|', tasks.next_cursor ?? null]]);
  store.workers = new Map(dash.workers.map((w) => [w.id, w]));
  store.queues = new Map(dash.queues.map((q) => [q.name, q]));
  store.breakers = new Map(dash.breakers.map((b) => [b.metadata.queue, b]));
  store.metrics = dash.system_metrics || null;
  ['tasks', 'workers', 'queues', 'breakers', 'metrics'].forEach((k) => store.dirty.add(k));
  schedule();
  return dash.seq;
}

/** Applies a task record unless the one held is newer; notifies on a finished job. */
function upsertTask(t, live) {
  if (!t || !t.id) return;
  const cur = store.tasks.get(t.id);
  if (cur && (cur.state_at ?? 0) > (t.state_at ?? 0) && !cur.pending) return;
  const next = { ...cur, ...t, pending: false };
  store.tasks.set(t.id, next);
  if (live && (!cur || cur.state !== next.state)) views.notifyTask(next);
  if (store.tasks.size > MAX_TASKS + EVICT_SLACK) evictOldest();
  store.dirty.add('tasks');
}

function evictOldest() {
  const finished = [...store.tasks.values()]
    .filter((t) => FINAL.has(t.state))
    .sort((a, b) => (a.state_at ?? 0) - (b.state_at ?? 0));
  finished.slice(0, store.tasks.size - MAX_TASKS).forEach((t) => store.tasks.delete(t.id));
}

/** One pushed event, whatever transport brought it. */
function applyEvent(ev) {
  const d = ev.data || {};
  switch (ev.type) {
    case 'task_update':
      details.changed('task', d.id);
      return upsertTask(d, true);
    case 'batch_progress': {
      const cur = store.tasks.get(d.jobId);
      if (cur) {
        store.tasks.set(d.jobId, { ...cur, ...pick(d), state: d.state || cur.state });
        store.dirty.add('tasks');
      }
      return undefined;
    }
    case 'queue_stats':
      store.queues.set(d.name, { ...store.queues.get(d.name), ...d });
      return store.dirty.add('queues');
    case 'worker_registered':
    case 'worker_deregistered':
    case 'worker_status_change':
    case 'worker_status_update':
      details.changed('worker', d.id);
      store.workers.set(d.id, { ...store.workers.get(d.id), ...d });
      return store.dirty.add('workers');
    case 'circuit_breaker':
      store.breakers.set(d.metadata?.queue || 'celery', d);
      views.notifyBreaker(d);
      return store.dirty.add('breakers');
    case 'metrics_update':
      // Only admins are sent these; the check keeps the panel empty for anyone else.
      if (store.claims.role === 'admin') store.metrics = { ...store.metrics, ...d };
      return store.dirty.add('metrics');
    default:
      return undefined;
  }
}

function pick(d) {
  const out = {};
  ['progress', 'totalBatches', 'completedBatches', 'estimatedTimeRemaining', 'queuePosition']
    .forEach((k) => {
      if (d[k] !== undefined && d[k] !== null) out[k] = d[k];
    });
  return out;
}

// ---- drawing -------------------------------------------------------------------------

let frameQueued = false;
/** Coalesces every change until the next animation frame: one redraw per frame. */
export function schedule() {
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    views.draw(store);
  });
}

function start(since) {
  details.initDetails({ api, toast: views.toast, admin: () => store.claims.role === 'admin' });
  views.init(store, {
    revoke,
    toggleBreaker,
    loadOlder,
    openTask: details.openTask,
    openWorker: details.openWorker,
    table: (el, fill) => new VirtualTable(el, fill),
  });
  // `?block=ws` (or `ws,sse`) makes the page treat those transports as unreachable.
  const block = (new URLSearchParams(location.search).get('block') || '').split(',').filter(Boolean);
  const client = new HybridClient({
    token: store.token,
    since,
    block,
    onEvent: (ev) => {
      applyEvent(ev);
      schedule();
    },
    onReset: () => loadSnapshot(),
    onStatus: (s) => views.connection(s),
    onAuthError: (msg) => signOut(`Your token was refused: ${msg}`),
  });
  window.vigil = {
    client,
    store,
    get stats() {
      return { ...client.stats, lastSeq: client.lastSeq, transport: client.transport, mode: client.mode };
    },
    forceReconnect: () => client.forceReconnect(),
    block: (kinds) => client.block(kinds),
  };
  client.start();
  setInterval(refreshQueues, QUEUE_REFRESH_MS);
  setInterval(() => {
    views.sample(store);
    store.dirty.add('workers'); // heartbeat ages
    store.dirty.add('tasks'); // runtimes of running tasks
    schedule();
  }, 1000);
}

async function refreshQueues() {
  try {
    // The snapshot's size is bounded, whatever the server holds.
    const { queues, counts } = await api('/api/v1/dashboard');
    queues.forEach((q) => store.queues.set(q.name, { ...store.queues.get(q.name), ...q }));
    store.counts = counts;
    store.dirty.add('queues');
    store.dirty.add('tasks');
    schedule();
  } catch {
    /* offline: the chart keeps its last values */
  }
}

// ---- actions -------------------------------------------------------------------------

/** The next page of older tasks (with the table's state and queue filters) from REST. */
async function loadOlder({ state, queue }) {
  const key = `${state}|${queue}`;
  const q = new URLSearchParams({ limit: String(OLDER_PAGE) });
  if (state) q.set('state', state);
  if (queue) q.set('queue', queue);
  const cursor = store.older.get(key);
  if (cursor === null) return;
  // A filter's first page starts at its newest task (those held already merge in).
  if (cursor !== undefined) q.set('cursor', cursor);
  try {
    const page = await api(`/api/v1/tasks?${q}`);
    page.tasks.forEach((t) => upsertTask(t, false));
    store.older.set(key, page.next_cursor ?? null);
    store.dirty.add('tasks');
    schedule();
  } catch (e) {
    views.toast('error', `Older tasks: ${e.message}`);
  }
}

/** Seed 001: show the task revoked at once; roll back if the server refuses. */
async function revoke(id) {
  const before = store.tasks.get(id);
  if (!before) return;
  store.tasks.set(id, { ...before, state: 'REVOKED', pending: true });
  store.dirty.add('tasks');
  schedule();
  try {
    await api(`/api/v1/tasks/${encodeURIComponent(id)}/revoke`, { method: 'POST' });
    const now = store.tasks.get(id);
    if (now?.pending) store.tasks.set(id, { ...now, pending: false });
    views.toast('success', `Revoked ${id}`);
  } catch (e) {
    const now = store.tasks.get(id);
    // Roll back only our own optimistic change; a pushed update since then wins.
    if (now?.pending) store.tasks.set(id, before);
    views.toast('error', `Revoke of ${id} refused — ${e.message}`);
  }
  store.dirty.add('tasks');
  schedule();
}

/** Seed 002: open or close a queue's breaker; the page shows the server's answer. */
async function toggleBreaker(queue, open, reason) {
  const action = open ? 'open-circuit-breaker' : 'close-circuit-breaker';
  const why = reason || `Manual toggle from dashboard - ${open ? 'opening' : 'closing'} circuit breaker`;
  try {
    const body = await api(`/api/v1/queue/${action}`, { method: 'POST', body: { queue, reason: why } });
    store.breakers.set(queue, body.data);
    store.dirty.add('breakers');
    schedule();
  } catch (e) {
    views.toast('error', `Breaker ${queue}: ${e.message}`);
  }
}

// ---- boot ----------------------------------------------------------------------------

document.getElementById('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  signIn(document.getElementById('token-input').value.trim());
});
document.getElementById('logout').addEventListener('click', () => signOut('Signed out.'));

const pending = sessionStorage.getItem('vigil.signout');
sessionStorage.removeItem('vigil.signout');
const initial = tokenFromUrl() || localStorage.getItem(TOKEN_KEY);
if (initial) signIn(initial);
else showLogin(pending || '');
