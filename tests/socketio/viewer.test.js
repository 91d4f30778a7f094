// Seed 003's client on the default namespace: no subscribe step, and a viewer
// receives only events about its own tasks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOKENS, VIEWER_SUB, connect, ingest, uniqueId } from './helpers.js';

test('a viewer on / receives its own tasks only, without subscribing', async (t) => {
  const { socket, updates } = await connect('/', TOKENS.viewer);
  t.after(() => socket.close());
  const mine = uniqueId('mine');
  const theirs = uniqueId('theirs');
  await ingest([
    { type: 'task-received', uuid: theirs, name: 'x', routing_key: 'celery', owner: 'bob' },
    { type: 'task-received', uuid: mine, name: 'x', routing_key: 'celery', owner: VIEWER_SUB },
    { type: 'task-started', uuid: mine, owner: VIEWER_SUB },
  ]);
  const got = await updates.waitFor((task) => task.id === mine, 2);
  assert.deepEqual(got.map((u) => u.payload.data.state), ['RECEIVED', 'STARTED']);
  assert.ok(updates.seen.every((u) => u.payload.data.owner === VIEWER_SUB), 'nothing of bob');
});

test('a viewer that subscribes to a room still sees only its own tasks there', async (t) => {
  const { socket, updates } = await connect('/', TOKENS.viewer);
  t.after(() => socket.close());
  const ack = await socket.timeout(10_000).emitWithAck('subscribe', { room: 'celery:tasks' });
  assert.equal(ack.success, true);
  const mine = uniqueId('mine');
  const theirs = uniqueId('theirs');
  await ingest([
    { type: 'task-received', uuid: theirs, name: 'x', owner: 'bob' },
    { type: 'task-received', uuid: mine, name: 'x', owner: VIEWER_SUB },
  ]);
  await updates.waitFor((task) => task.id === mine, 1);
  assert.ok(!updates.seen.some((u) => u.payload.data.id === theirs));
});
