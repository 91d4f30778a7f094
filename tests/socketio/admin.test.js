// Seed 000/001 on the admin namespace: subscribe with acknowledgement, task_update in
// order with seed 000's payload shape, ping/pong, unknown events, queue rooms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_NS, TOKENS, connect, emitWithAck, ingest, next, uniqueId } from './helpers.js';

test('subscribe is acknowledged and answered with subscribed', async (t) => {
  const { socket } = await connect(ADMIN_NS, TOKENS.admin);
  t.after(() => socket.close());
  const subscribed = next(socket, 'subscribed');
  // Seed 001's callback form; both seeds' ack shapes are in the answer.
  const ack = await new Promise((resolve) => socket.emit('subscribe', { room: 'celery:tasks' }, resolve));
  assert.equal(ack.success, true);
  assert.equal(ack.ack, true);
  assert.deepEqual(await subscribed, { room: 'celery:tasks' });
});

test('task_update arrives in order with the seed payload shape', async (t) => {
  const { socket, updates } = await connect(ADMIN_NS, TOKENS.admin);
  t.after(() => socket.close());
  await emitWithAck(socket, 'subscribe', { room: 'celery:tasks' });
  const id = uniqueId('order');
  await ingest([
    { type: 'task-received', uuid: id, name: 'reports.build', routing_key: 'default', timestamp: 100 },
    { type: 'task-started', uuid: id, hostname: 'w1', timestamp: 101 },
  ]);
  await ingest({ type: 'task-succeeded', uuid: id, result: 'ok', runtime: 1.5, timestamp: 102 });
  const got = await updates.waitFor((task) => task.id === id, 3);
  assert.deepEqual(got.map((u) => u.payload.data.state), ['RECEIVED', 'STARTED', 'SUCCESS']);
  const seqs = got.map((u) => u.seq);
  assert.deepEqual([...seqs].sort((a, b) => a - b), seqs, 'in sequence order');
  for (const u of got) {
    assert.equal(u.payload.type, 'task_update');
    assert.equal(typeof u.payload.seq, 'number');
    assert.equal(u.payload.data.id, id);
    assert.equal(u.payload.data.name, 'reports.build');
    assert.equal(u.payload.data.queue, 'default');
  }
  assert.equal(got[2].payload.data.result, 'ok');
});

test('ping is answered with pong carrying the timestamp', async (t) => {
  const { socket } = await connect(ADMIN_NS, TOKENS.admin);
  t.after(() => socket.close());
  const pong = next(socket, 'pong');
  const timestamp = Date.now();
  socket.emit('ping', { timestamp });
  assert.deepEqual(await pong, { timestamp });
});

test('unknown events and bad payloads get an error ack and the socket lives on', async (t) => {
  const { socket } = await connect(ADMIN_NS, TOKENS.admin);
  t.after(() => socket.close());
  const unknown = await emitWithAck(socket, 'dance', { _msgId: 'm1' });
  assert.equal(unknown.success, false);
  assert.equal(unknown.ack, false);
  assert.match(unknown.error, /unknown event `dance`/);
  const noRoom = await emitWithAck(socket, 'subscribe', { nope: 1 });
  assert.equal(noRoom.success, false);
  assert.match(noRoom.error, /room/);
  const badRoom = await emitWithAck(socket, 'subscribe', { room: 'lobby' });
  assert.match(badRoom.error, /unknown room `lobby`/);
  socket.emit('subscribe'); // no payload, no ack: ignored
  const ok = await emitWithAck(socket, 'subscribe', { room: 'celery:queues' });
  assert.equal(ok.success, true);
  assert.ok(socket.connected);
});

test('a queue room receives only that queue, and unsubscribe stops it', async (t) => {
  const { socket, updates } = await connect(ADMIN_NS, TOKENS.admin);
  t.after(() => socket.close());
  const queue = uniqueId('q');
  await emitWithAck(socket, 'subscribe', { room: `celery:queue:${queue}` });
  const mine = uniqueId('in-queue');
  const other = uniqueId('elsewhere');
  await ingest([
    { type: 'task-received', uuid: other, name: 'x', routing_key: 'other-queue' },
    { type: 'task-received', uuid: mine, name: 'x', routing_key: queue },
  ]);
  const got = await updates.waitFor((task) => task.id === mine, 1);
  assert.equal(got[0].payload.data.queue, queue);
  assert.ok(!updates.seen.some((u) => u.payload.data.id === other), 'other queue not received');

  const left = await emitWithAck(socket, 'unsubscribe', { room: `celery:queue:${queue}` });
  assert.equal(left.success, true);
  // A marker in another room, published after the event: once it is here, the event
  // would have been too.
  const markerQueue = uniqueId('marker-q');
  await emitWithAck(socket, 'subscribe', { room: `celery:queue:${markerQueue}` });
  const after = uniqueId('after');
  const marker = uniqueId('marker');
  await ingest([
    { type: 'task-received', uuid: after, name: 'x', routing_key: queue },
    { type: 'task-received', uuid: marker, name: 'x', routing_key: markerQueue },
  ]);
  await updates.waitFor((task) => task.id === marker, 1);
  assert.ok(!updates.seen.some((u) => u.payload.data.id === after), 'nothing after unsubscribe');
});

test('over the rate, updates come as batch_update and none is lost', async (t) => {
  const { socket, updates } = await connect(ADMIN_NS, TOKENS.admin);
  t.after(() => socket.close());
  await emitWithAck(socket, 'subscribe', { room: 'celery:tasks' });
  const prefix = uniqueId('burst');
  const events = Array.from({ length: 30 }, (_, i) => ({
    type: 'task-received', uuid: `${prefix}-${i}`, name: 'burst', routing_key: 'burst',
  }));
  await ingest(events);
  const got = await updates.waitFor((task) => task.id.startsWith(prefix), 30);
  assert.ok(got.some((u) => u.via === 'task_update'), 'the first ones are sent at once');
  const batched = got.filter((u) => u.via === 'batch_update');
  assert.ok(batched.length > 0, 'the rest are batched');
  assert.equal(batched[0].batch.count, batched[0].batch.updates.length);
  assert.equal(batched[0].batch.updates[0].event, 'task_update');
  const ids = got.map((u) => u.payload.data.id);
  assert.deepEqual(ids, events.map((e) => e.uuid), 'every one, in order');
});
