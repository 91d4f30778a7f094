// A socket's life past connect: resume from the handshake's `since`, token expiry and
// refresh over the connection, and MessagePack `batch_update` for binary clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { gunzipSync } from 'node:zlib';
import { decode } from '@msgpack/msgpack';
import {
  TOKENS, URL, WAIT_MS, connect, emitWithAck, ingest, mintToken, next, recordAll, uniqueId, until,
} from './helpers.js';

/** Connects to `/` with `auth`, recording every event from the very first. */
function open(auth) {
  const socket = io(`${URL}/`, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  const all = recordAll(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, all }));
    socket.once('connect_error', reject);
  });
}

const seqOf = (e) => e.data?.seq;

test('a socket resumed with auth.since gets every missed event in order, no gap, no duplicate', async (t) => {
  const first = await open({ token: TOKENS.admin });
  const ids = [uniqueId('r1'), uniqueId('r2')];
  await ingest(ids.map((uuid) => ({ type: 'task-received', uuid, name: 'x' })));
  await until(() => first.all.filter((e) => e.event === 'task_update').length >= 2, 'first updates');
  const last = Math.max(...first.all.map(seqOf).filter(Number.isInteger));
  first.socket.disconnect(); // forced disconnect

  const missed = [uniqueId('m1'), uniqueId('m2'), uniqueId('m3')];
  await ingest(missed.map((uuid) => ({ type: 'task-received', uuid, name: 'x' })));
  const again = await open({ token: TOKENS.admin, since: last });
  t.after(() => again.socket.close());
  const live = uniqueId('live');
  await ingest([{ type: 'task-received', uuid: live, name: 'x' }]);
  await until(
    () => again.all.some((e) => e.event === 'task_update' && e.data.data.id === live),
    'the live update',
  );
  // One log entry per task change: its `task_update`, then the `job-*` derived from it
  // with the same seq.
  const seqs = again.all.filter((e) => e.event === 'task_update').map(seqOf);
  assert.equal(seqs[0], last + 1, 'starts right after the last seen');
  for (let i = 1; i < seqs.length; i += 1) assert.equal(seqs[i], seqs[i - 1] + 1, `no gap or duplicate at ${i}`);
  const jobSeqs = again.all.filter((e) => e.event.startsWith('job-')).map(seqOf);
  assert.deepEqual(jobSeqs, seqs, 'each update brings its job event');
  const updates = again.all.filter((e) => e.event === 'task_update').map((e) => e.data.data.id);
  assert.deepEqual(updates, [...missed, live]);
});

test('bad handshake fields are refused with a clear connect_error', async () => {
  const socket = io(`${URL}/`, {
    auth: { token: TOKENS.admin, since: 'yesterday' }, transports: ['websocket'], reconnection: false, forceNew: true,
  });
  const err = await new Promise((resolve) => socket.once('connect_error', resolve));
  socket.close();
  assert.match(err.message, /422.*since/);
});

test('an expired token ends the socket with auth-error; refresh keeps it alive', async (t) => {
  const short = await connect('/', mintToken('carol', 'viewer', 2));
  const kept = await connect('/', mintToken('carol', 'viewer', 2));
  t.after(() => { short.socket.close(); kept.socket.close(); });
  const ack = await emitWithAck(kept.socket, 'refresh', { token: mintToken('carol', 'viewer', 3600) });
  assert.equal(ack.success, true);
  assert.ok(ack.exp > Date.now() / 1000 + 3000);
  const bad = await emitWithAck(kept.socket, 'refresh', { token: mintToken('mallory', 'viewer', 3600) });
  assert.equal(bad.success, false, 'a token for someone else is refused');

  const expired = await next(short.socket, 'auth-error', 6000);
  assert.equal(expired.code, 'token_expired');
  await until(() => !short.socket.connected, 'the expired socket to close');

  const mine = uniqueId('carol');
  await ingest([{ type: 'task-received', uuid: mine, name: 'x', owner: 'carol' }]);
  await kept.updates.waitFor((task) => task.id === mine, 1);
  assert.ok(kept.socket.connected, 'the refreshed socket outlived the first token');
});

test('a refresh that drops admin ends an admin-namespace socket', async (t) => {
  const { socket } = await connect('/ws/celery/tasks', mintToken('dave', 'admin', 3600));
  t.after(() => socket.close());
  const authError = next(socket, 'auth-error');
  const ack = await emitWithAck(socket, 'refresh', { token: mintToken('dave', 'viewer', 3600) });
  assert.equal(ack.success, false);
  assert.equal((await authError).code, 'forbidden');
  await until(() => !socket.connected, 'disconnect');
});

test('a binary client gets batch_update as MessagePack', async (t) => {
  const { socket, all } = await open({ token: TOKENS.admin, encoding: 'msgpack' });
  t.after(() => socket.close());
  // Over the 10 msg/s rate: the excess is batched.
  const ids = Array.from({ length: 40 }, (_, i) => uniqueId(`bin${i}`));
  await ingest(ids.map((uuid) => ({ type: 'task-received', uuid, name: 'x', kwargs: { pad: 'p'.repeat(100) } })));
  await until(() => all.some((e) => e.event === 'batch_update'), 'a batch_update', WAIT_MS);
  const batch = all.find((e) => e.event === 'batch_update');
  assert.ok(batch.data instanceof Uint8Array || Buffer.isBuffer(batch.data), 'binary payload');
  // Gzip-compressed (over 1 KiB) when it starts with the gzip magic bytes.
  const bytes = Buffer.from(batch.data);
  const body = decode(bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes);
  assert.ok(body.count > 0);
  assert.equal(body.updates.length, body.count);
  const u = body.updates[0];
  assert.ok(ids.includes(u.data.data?.id ?? u.data.jobId), 'an update of this test');
});

test('a message over 64 KiB ends only that socket', async (t) => {
  const big = await open({ token: TOKENS.admin });
  const other = await open({ token: TOKENS.admin });
  t.after(() => { big.socket.close(); other.socket.close(); });
  const gone = new Promise((resolve) => big.socket.once('disconnect', resolve));
  big.socket.emit('ping', { timestamp: 1, pad: 'x'.repeat(100 * 1024) });
  await gone;
  const pong = next(other.socket, 'pong');
  other.socket.emit('ping', { timestamp: 7 });
  assert.equal((await pong).timestamp, 7, 'other sockets are unharmed');
});
