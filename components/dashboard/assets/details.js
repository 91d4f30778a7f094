// The detail drawer, what a Flower user opens a task or a worker for.
// - A task: args, kwargs, result, exception, traceback, every attempt, every event in
//   order with its time and fields, worker, parent/children links; admins revoke or
//   terminate it (with the signal).
// - A worker: status, pid, software, pool, load, heartbeat history, task counts by event
//   type, queues; admins grow/shrink/autoscale the pool, add/cancel consumers, set a task
//   type's rate and time limits, shut it down — carried out by the bridge.
// Text goes in with `textContent` only: every field comes from producers.

/** How often an open task's drawer refetches while its task keeps changing. */
const REFRESH_MS = 700;

let ctx = null;
let open = null; // { kind: 'task' | 'worker', id }
let refreshTimer = null;

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

const when = (s) => (s ? new Date(s * 1000).toISOString().replace('T', ' ').replace('Z', '') : '—');
const text = (v) => (v == null ? '—' : typeof v === 'string' ? v : JSON.stringify(v));

function link(label, fn) {
  const a = el('a', { href: '#', textContent: label });
  a.onclick = (e) => { e.preventDefault(); fn(); };
  return a;
}

function rows(pairs) {
  return el('dl', { class: 'kv' }, ...pairs.flatMap(([k, v]) => [
    el('dt', { textContent: k }), el('dd', {}, v instanceof Node ? v : document.createTextNode(text(v)))]));
}

function table(head, body) {
  return el('table', { class: 'grid' },
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { textContent: h })))),
    el('tbody', {}, ...body.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c instanceof Node ? c : document.createTextNode(text(c))))))));
}

function show(title, ...content) {
  const close = el('button', { class: 'ghost small', textContent: 'Close' });
  close.onclick = closeDrawer;
  $('drawer').replaceChildren(el('header', {}, el('h2', { textContent: title }), close), ...content);
  $('drawer').hidden = false;
}

/** Wires the drawer to the page: `api` calls REST, `toast` reports, `admin()` says the role. */
export function initDetails(context) {
  ctx = context;
}

export function closeDrawer() {
  open = null;
  $('drawer').hidden = true;
}

/** A pushed change to `id`: refetch its open drawer, at most every REFRESH_MS. */
export function changed(kind, id) {
  if (!open || open.kind !== kind || open.id !== id || refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    if (open?.kind === 'task') openTask(open.id);
    else if (open?.kind === 'worker') openWorker(open.id);
  }, REFRESH_MS);
}

// ---- task ------------------------------------------------------------------------------

export async function openTask(id) {
  open = { kind: 'task', id };
  let t;
  let h;
  try {
    [t, h] = await Promise.all([ctx.api(`/api/v1/tasks/${encodeURIComponent(id)}`),
      ctx.api(`/api/v1/tasks/${encodeURIComponent(id)}/events`)]);
  } catch (e) {
    return show(`Task ${id}`, el('p', { class: 'error', textContent: e.message }));
  }
  if (open?.id !== id) return undefined;
  const badge = el('span', { class: `badge s-${t.state}`, textContent: t.state });
  const children = el('span', {}, ...(t.children || []).flatMap((c) => [link(c, () => openTask(c)), ' ']));
  return show(t.name || '(unnamed task)', el('p', {}, badge, ' ', el('code', { textContent: t.id })),
    rows([
      ['queue', t.queue], ['worker', t.worker ? link(t.worker, () => openWorker(t.worker)) : null],
      ['sent by', t.client], ['sent', when(t.sent_at)], ['received', when(t.received_at)],
      ['started', when(t.started_at)], ['finished', when(t.finished_at)],
      ['runtime', t.runtime == null ? null : `${t.runtime.toFixed(3)} s`], ['retries', t.retries],
      ['progress', `${Math.round(t.progress ?? 0)}%${t.step ? ` · ${t.step}` : ''}`],
      ['eta', t.eta], ['expires', t.expires],
      ['parent', t.parent_id ? link(t.parent_id, () => openTask(t.parent_id)) : null],
      ['root', t.root_id ? link(t.root_id, () => openTask(t.root_id)) : null],
      ['children', t.children?.length ? children : null],
    ]),
    ...[['args', t.args], ['kwargs', t.kwargs], ['result', t.result], ['exception', t.exception],
      ['traceback', t.traceback]].filter(([, v]) => v != null)
      .map(([k, v]) => el('section', {}, el('h3', { textContent: k }), el('pre', { textContent: text(v) }))),
    el('h3', { textContent: `Attempts (${(t.attempts || []).length})` }),
    table(['#', 'state', 'worker', 'received', 'started', 'finished', 'runtime', 'exception'],
      (t.attempts || []).map((a) => [a.retries, a.state, a.worker, when(a.received_at), when(a.started_at),
        when(a.finished_at), a.runtime, a.exception])),
    el('h3', { textContent: `Events (${h.events.length}${h.dropped ? `, ${h.dropped} older dropped` : ''})` }),
    table(['time', 'event', 'fields'], h.events.map((e) => [when(e.timestamp),
      e.breaker_open ? `${e.type} (breaker open)` : e.type, JSON.stringify(e.fields)])),
    ctx.admin() && !['SUCCESS', 'FAILURE', 'REVOKED'].includes(t.state) ? revokeButtons(t.id) : '');
}

function revokeButtons(id) {
  const box = el('p', { class: 'controls' });
  [['Revoke', ''], ['Terminate', '?terminate=true&signal=SIGTERM'], ['Kill', '?terminate=true&signal=SIGKILL']]
    .forEach(([label, query]) => {
      const b = el('button', { class: label === 'Revoke' ? 'ghost small' : 'danger small', textContent: label });
      b.onclick = () => command(`/api/v1/tasks/${encodeURIComponent(id)}/revoke${query}`, undefined, `${label} ${id}`);
      box.append(b);
    });
  return box;
}

// ---- worker ----------------------------------------------------------------------------

export async function openWorker(id) {
  open = { kind: 'worker', id };
  let w;
  try {
    w = await ctx.api(`/api/v1/workers/${encodeURIComponent(id)}`);
  } catch (e) {
    return show(`Worker ${id}`, el('p', { class: 'error', textContent: e.message }));
  }
  if (open?.id !== id) return undefined;
  const pool = w.stats?.pool || {};
  const now = Date.now() / 1000;
  return show(w.id, rows([
    ['status', w.status], ['pid', w.pid], ['software', [w.sw_ident, w.sw_ver, w.sw_sys].filter(Boolean).join(' ') || null],
    ['pool', pool.implementation ? `${pool.implementation} · ${(pool.processes || []).length} of ${pool['max-concurrency']} processes` : null],
    ['prefetch', w.stats?.prefetch_count], ['load average', w.loadavg], ['heartbeat every', w.freq ? `${w.freq} s` : null],
    ['registered', when(w.registered_at)], ['uptime', w.uptime == null ? null : `${Math.round(w.uptime)} s`],
    ['heartbeats', (w.heartbeats || []).map((b) => `${Math.round(now - b)} s ago`).reverse().join(', ') || null],
    ['active', w.active], ['processed', w.processed], ['failed', w.failed],
    ['queues', Array.isArray(w.queues) ? w.queues.join(', ') : w.queues],
  ]),
  el('h3', { textContent: 'Task events seen' }),
  table(['event', 'count'], Object.entries(w.task_counts || {})),
  ctx.admin() ? controls(w.id) : '');
}

function controls(id) {
  const input = (name, placeholder, size = 10) => el('input', { name, placeholder, size });
  const f = {
    n: input('n', 'n', 3), max: input('max', 'max', 3), min: input('min', 'min', 3), queue: input('queue', 'queue'),
    task: input('task', 'task name', 16), rate: input('rate', '10/m', 6), soft: input('soft', 'soft s', 5), hard: input('hard', 'hard s', 5),
  };
  const num = (e) => (e.value.trim() === '' ? undefined : Number(e.value));
  const send = (label, body) => command(`/api/v1/workers/${encodeURIComponent(id)}/control`, body, `${label} on ${id}`);
  const btn = (label, body, cls = 'ghost small') => {
    const b = el('button', { class: cls, textContent: label, 'data-command': label });
    b.onclick = () => send(label, body());
    return b;
  };
  return el('section', { class: 'controls' }, el('h3', { textContent: 'Control' }),
    el('p', {}, f.n, btn('pool_grow', () => ({ command: 'pool_grow', n: num(f.n) ?? 1 })),
      btn('pool_shrink', () => ({ command: 'pool_shrink', n: num(f.n) ?? 1 }))),
    el('p', {}, f.max, f.min, btn('autoscale', () => ({ command: 'autoscale', max: num(f.max), min: num(f.min) }))),
    el('p', {}, f.queue, btn('add_consumer', () => ({ command: 'add_consumer', queue: f.queue.value.trim() })),
      btn('cancel_consumer', () => ({ command: 'cancel_consumer', queue: f.queue.value.trim() }))),
    el('p', {}, f.task, f.rate, btn('rate_limit', () => ({ command: 'rate_limit', task: f.task.value.trim(), rate: f.rate.value.trim() || null })),
      f.soft, f.hard, btn('time_limit', () => ({ command: 'time_limit', task: f.task.value.trim(), soft: num(f.soft), hard: num(f.hard) }))),
    el('p', {}, btn('shutdown', () => ({ command: 'shutdown' }), 'danger small')));
}

async function command(path, body, label) {
  if (label.startsWith('shutdown') && !window.confirm(`${label}?`)) return;
  try {
    await ctx.api(path, { method: 'POST', body });
    ctx.toast('success', `${label}: sent`);
  } catch (e) {
    ctx.toast('error', `${label} refused — ${e.message}`);
  }
}
