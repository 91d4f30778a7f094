// The HTTP long-polling transport, for clients behind proxies that block WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_NS, TOKENS, connect, emitWithAck, ingest, next, refusal, uniqueId } from './helpers.js';

test('polling only: connect, subscribe, receive task_update, ping', async (t) => {
  const { socket, updates } = await connect(ADMIN_NS, TOKENS.admin, ['polling']);
  t.after(() => socket.close());
  assert.equal(socket.io.engine.transport.name, 'polling');
  const ack = await emitWithAck(socket, 'subscribe', { room: 'celery:tasks' });
  assert.equal(ack.success, true);
  const id = uniqueId('polled');
  await ingest({ type: 'task-received', uuid: id, name: 'x', routing_key: 'default' });
  const [u] = await updates.waitFor((task) => task.id === id, 1);
  assert.equal(u.payload.type, 'task_update');
  const pong = next(socket, 'pong');
  socket.emit('ping', { timestamp: 7 });
  assert.deepEqual(await pong, { timestamp: 7 });
});

test('polling only: a viewer is refused on the admin namespace', async () => {
  const err = await refusal(ADMIN_NS, TOKENS.viewer, ['polling']);
  assert.match(err.message, /needs role admin/);
});

test('with websocket first in the list, the transport is websocket', async (t) => {
  const { socket } = await connect(ADMIN_NS, TOKENS.admin);
  t.after(() => socket.close());
  assert.equal(socket.io.engine.transport.name, 'websocket');
});
