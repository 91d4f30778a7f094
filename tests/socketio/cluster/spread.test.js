// The seeds' Socket.IO clients spread over two Vigil hosts on one Redis (run by
// `cargo test --test cluster`): events ingested on host A reach every client on A and
// B once and in sequence order, over WebSocket and long-polling; a client of A resumes
// on B from its last seq.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { ADMIN_NS, TOKENS, VIEWER_SUB, WAIT_MS, emitWithAck, ingest, recordAll, uniqueId, until } from '../helpers.js';

const HOSTS = { a: process.env.VIGIL_URL, b: process.env.VIGIL_URL_B };

/** A seed 000/003 client of `host`; resolves once connected. */
function open(host, namespace, token, { transports = ['websocket', 'polling'], since } = {}) {
  const socket = io(`${HOSTS[host]}${namespace}`, {
    auth: since === undefined ? { token } : { token, since },
    transports,
    reconnection: false,
    forceNew: true,
    timeout: WAIT_MS,
  });
  const all = recordAll(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, all }));
    socket.once('connect_error', reject);
  });
}

/** The task updates `all` holds for `ids`, as seq numbers. */
function seqsOf(all, ids) {
  return all
    .filter((e) => e.event === 'task_update' && ids.has(e.data?.data?.id))
    .map((e) => e.data.seq);
}

function assertOnceInOrder(seqs, n, who) {
  assert.equal(seqs.length, n, `${who}: ${n} updates`);
  assert.deepEqual([...new Set(seqs)], seqs, `${who}: no duplicate`);
  assert.deepEqual([...seqs].sort((x, y) => x - y), seqs, `${who}: in sequence order`);
}

test('clients on both hosts get every event ingested on one host, once and in order', async (t) => {
  const clients = {
    'admin on B, WebSocket': await open('b', ADMIN_NS, TOKENS.admin, { transports: ['websocket'] }),
    'admin on B, long-polling': await open('b', ADMIN_NS, TOKENS.admin, { transports: ['polling'] }),
    'admin on A, WebSocket': await open('a', ADMIN_NS, TOKENS.admin),
    'viewer on B (seed 003)': await open('b', '/', TOKENS.viewer),
    'viewer on A (seed 003)': await open('a', '/', TOKENS.viewer),
  };
  t.after(() => Object.values(clients).forEach((c) => c.socket.close()));
  for (const [who, c] of Object.entries(clients)) {
    if (who.startsWith('admin')) await emitWithAck(c.socket, 'subscribe', { room: 'celery:tasks' });
  }
  const ids = new Set();
  for (let i = 0; i < 10; i++) {
    const id = uniqueId(`spread${i}`);
    ids.add(id);
    await ingest([
      { type: 'task-received', uuid: id, name: 'etl', routing_key: 'default', owner: VIEWER_SUB, timestamp: 100 + i },
      { type: 'task-started', uuid: id, hostname: 'w1', timestamp: 101 + i },
      { type: 'task-succeeded', uuid: id, result: 'ok', timestamp: 102 + i },
    ]);
  }
  for (const [who, c] of Object.entries(clients)) {
    await until(() => seqsOf(c.all, ids).length >= 30, `${who}: 30 updates`);
    assertOnceInOrder(seqsOf(c.all, ids), 30, who);
  }
});

test('a client of host A resumes on host B from its last seq', async (t) => {
  const first = await open('a', ADMIN_NS, TOKENS.admin);
  await emitWithAck(first.socket, 'subscribe', { room: 'celery:tasks' });
  const ids = new Set([uniqueId('roam1'), uniqueId('roam2')]);
  const [one, two] = [...ids];
  await ingest({ type: 'task-received', uuid: one, routing_key: 'default', timestamp: 1 });
  await until(() => seqsOf(first.all, ids).length === 1, 'the first update on A');
  const last = seqsOf(first.all, ids)[0];
  first.socket.close(); // host A's connection is gone
  await ingest({ type: 'task-received', uuid: two, routing_key: 'default', timestamp: 2 });
  // Seed 000's client again, now on B, resuming with `auth.since` and its rooms.
  const socket = io(`${HOSTS.b}${ADMIN_NS}`, {
    auth: { token: TOKENS.admin, since: last, rooms: ['celery:tasks'] },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  t.after(() => socket.close());
  const all = recordAll(socket);
  await until(() => seqsOf(all, ids).length >= 1, 'the missed update on B');
  const got = seqsOf(all, ids);
  assert.equal(got.length, 1, 'only what was missed');
  assert.ok(got[0] > last, 'after the cursor');
});
