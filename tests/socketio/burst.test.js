// A burst never disconnects a reading Socket.IO client (issue 11): 20 000 distinct
// task updates posted in 20 requests at the default rate limit. The client, subscribed
// to celery:tasks like seed 000's, ends with every task — from updates, and from the
// snapshot a `reset` tells it to refetch — and is never disconnected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_NS, TOKENS, URL, connect, emitWithAck, uniqueId } from './helpers.js';

const TASKS = 20_000;
const BATCH = 1000;
const CATCH_UP_MS = 120_000;

/** The snapshot a `reset` asks for: every task, page by page with `next_cursor`
 * (offsets stop at 10 000; the cursor pages on without gaps). */
async function snapshot(prefix, seen) {
  for (let cursor = null; ;) {
    const page = cursor ? `&cursor=${cursor}` : '';
    const res = await fetch(`${URL}/api/v1/tasks?limit=${BATCH}${page}`, {
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const { tasks, next_cursor: next } = await res.json();
    for (const t of tasks) if (t.id.startsWith(prefix)) seen.add(t.id);
    if (tasks.length === 0 || !next) return;
    cursor = next;
  }
}

test('a reading client gets every task of a 20 000-update burst without a disconnect', { timeout: CATCH_UP_MS + 60_000 }, async () => {
  const prefix = uniqueId('burst');
  const { socket } = await connect(ADMIN_NS, TOKENS.admin, ['websocket']);
  let disconnected = null;
  socket.on('disconnect', (reason) => { disconnected = reason; });
  await emitWithAck(socket, 'subscribe', { room: 'celery:tasks' });
  const seen = new Set();
  let resets = 0;
  let snapshots = Promise.resolve();
  const note = (task) => { if (task?.id?.startsWith(prefix)) seen.add(task.id); };
  socket.on('task_update', (p) => note(p?.data));
  socket.on('batch_update', (b) => b.updates.forEach((u) => note(u.data?.data)));
  socket.on('reset', () => { resets += 1; snapshots = snapshots.then(() => snapshot(prefix, seen)); });
  for (let start = 0; start < TASKS; start += BATCH) {
    const events = [];
    for (let i = start; i < start + BATCH; i++) events.push({ type: 'task-received', uuid: `${prefix}-${i}`, name: 'b' });
    const res = await fetch(`${URL}/api/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.producer}`, 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    assert.equal(res.status, 202);
  }
  const deadline = Date.now() + CATCH_UP_MS;
  let lost;
  try {
    while (seen.size < TASKS && Date.now() < deadline && !disconnected) {
      await new Promise((r) => setTimeout(r, 200));
      await snapshots;
    }
  } finally {
    lost = disconnected; // before our own close() sets it
    // Closed whatever happens: a client left open would keep the test process alive.
    socket.close();
  }
  assert.equal(lost, null, `disconnected: ${lost}`);
  assert.equal(seen.size, TASKS, `${seen.size} of ${TASKS} tasks (${resets} resets)`);
});
