// Shared by the Socket.IO tests: the host's address and tokens come from the
// environment (set by `cargo test --test socketio`, which starts the host).
import { createHmac } from 'node:crypto';
import { io } from 'socket.io-client';

export const URL = mustEnv('VIGIL_URL');
export const TOKENS = {
  admin: mustEnv('VIGIL_ADMIN_TOKEN'),
  viewer: mustEnv('VIGIL_VIEWER_TOKEN'), // sub "alice"
  producer: mustEnv('VIGIL_PRODUCER_TOKEN'),
  expired: mustEnv('VIGIL_EXPIRED_TOKEN'), // an admin token past its exp
};
export const VIEWER_SUB = 'alice';
export const ADMIN_NS = '/ws/celery/tasks';
/** How long a test waits for one expected message before failing. */
export const WAIT_MS = 10_000;

function mustEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through \`cargo test --test socketio\``);
  return v;
}

/** Connects exactly as seed 000's WebSocketService does; resolves once connected. */
export function connect(namespace, token, transports = ['websocket', 'polling']) {
  const socket = io(`${URL}${namespace}`, {
    auth: { token },
    transports,
    reconnection: false,
    forceNew: true,
    timeout: WAIT_MS,
  });
  const updates = collectTaskUpdates(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, updates }));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Resolves with the connect_error a refused connection gets. */
export function refusal(namespace, token, transports = ['websocket', 'polling']) {
  const socket = io(`${URL}${namespace}`, {
    auth: token === undefined ? {} : { token },
    transports,
    reconnection: false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.close();
      reject(new Error('connected, but should have been refused'));
    });
    socket.once('connect_error', (err) => {
      socket.close();
      resolve(err);
    });
  });
}

/**
 * Every task record the socket receives, in arrival order, whether it came alone
 * (`task_update`) or inside a rate-limited `batch_update`; each as `{seq, via, payload}`
 * where `payload` is seed 000's `{type:'task_update', data:<task>}`.
 */
function collectTaskUpdates(socket) {
  const seen = [];
  const waiters = new Set();
  const push = (entry) => {
    seen.push(entry);
    for (const w of waiters) w();
  };
  socket.on('task_update', (payload) => push({ seq: payload.seq, via: 'task_update', payload }));
  socket.on('batch_update', (batch) => {
    for (const u of batch.updates) push({ seq: u.data.seq, via: 'batch_update', payload: u.data, batch });
  });
  return {
    seen,
    /** Resolves with the updates matching `pred` once there are `n` of them. */
    async waitFor(pred, n, ms = WAIT_MS) {
      const matching = () => seen.filter((e) => pred(e.payload.data));
      if (matching().length >= n) return matching();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out: ${matching().length}/${n} updates`));
        }, ms);
        const check = () => {
          if (matching().length >= n) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(matching());
          }
        };
        waiters.add(check);
      });
    },
  };
}

/** The next `event` on `socket`, or a timeout error. */
export function next(socket, event, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (data) => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}

/** Emits with an acknowledgement callback (seed 001's reliable send). */
export function emitWithAck(socket, event, data) {
  return socket.timeout(WAIT_MS).emitWithAck(event, data);
}

/** Reports Celery events as a producer; resolves with the response body. */
export async function ingest(events) {
  const res = await fetch(`${URL}/api/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.producer}`, 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  const body = await res.json();
  if (res.status !== 202) throw new Error(`ingest: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** A task id no other test uses. */
export function uniqueId(prefix) {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** An HS256 token for `sub` with `role`, valid for `ttlSecs`, signed as the host's are. */
export function mintToken(sub, role, ttlSecs) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, role, iat: now, exp: now + ttlSecs })}`;
  const sig = createHmac('sha256', mustEnv('VIGIL_JWT_SECRET')).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/**
 * Every event the socket receives, in order, as `{event, data}`; the updates inside a
 * rate-limited JSON `batch_update` are listed one by one, as if they had come alone.
 */
export function recordAll(socket) {
  const all = [];
  socket.onAny((event, data) => {
    if (event === 'batch_update' && Array.isArray(data?.updates)) {
      for (const u of data.updates) all.push({ event: u.event, data: u.data });
    } else {
      all.push({ event, data });
    }
  });
  return all;
}

/** Resolves once `cond()` holds (checked every 20 ms), or rejects after `ms`. */
export async function until(cond, what, ms = WAIT_MS) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
