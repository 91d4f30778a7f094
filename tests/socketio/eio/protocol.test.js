// Vigil's Engine.IO v4 / Socket.IO v5 layer (crates/transport) against the official
// client, with the test application of crates/transport/tests/official_client.rs
// (which starts the server and sets EIO_URL). Tokens: `good` may join `/`, `admin`
// may join `/` and `/admin`. The server pings every 300 ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io, Manager } from 'socket.io-client';

const URL = process.env.EIO_URL;
if (!URL) throw new Error('EIO_URL is not set: run through `cargo test -p vigil-transport`');
const WAIT = 10_000;

function open(ns, opts = {}) {
  return io(`${URL}${ns === '/' ? '' : ns}`, {
    auth: { token: 'good' },
    reconnection: false,
    forceNew: true,
    timeout: WAIT,
    ...opts,
  });
}

/** The next `event` (resolves with its first argument), or a timeout. */
function next(emitter, event, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (data) => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}

async function connected(socket) {
  const err = next(socket, 'connect_error').then((e) => Promise.reject(e));
  err.catch(() => {});
  await Promise.race([next(socket, 'connect'), err]);
  return socket;
}

/** Collects `item` events; resolves once `n` came. */
function items(socket, n) {
  const got = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${got.length}/${n} items`)), WAIT);
    socket.on('item', (data) => {
      got.push(data);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

for (const transports of [['websocket'], ['polling']]) {
  const name = transports[0];

  test(`${name}: connect, acks, emits`, async (t) => {
    const socket = await connected(open('/', { transports }));
    t.after(() => socket.close());
    assert.equal(socket.io.engine.transport.name, name);
    assert.deepEqual(await socket.timeout(WAIT).emitWithAck('echo', { a: [1, 'x'] }), { a: [1, 'x'] });
    const subscribed = next(socket, 'subscribed');
    const ack = await socket.timeout(WAIT).emitWithAck('subscribe', { room: 'r1' });
    assert.deepEqual(ack, { success: true, room: 'r1' });
    assert.deepEqual(await subscribed, { room: 'r1', ns: '/' });
  });

  test(`${name}: binary attachments both ways`, async (t) => {
    const socket = await connected(open('/', { transports }));
    t.after(() => socket.close());
    const back = next(socket, 'binary-back');
    const sent = Buffer.from([1, 2, 3, 255, 0]);
    const ack = await socket.timeout(WAIT).emitWithAck('binary', { label: 'x', data: sent });
    assert.equal(ack.size, 5);
    assert.equal(ack.arg.label, 'x');
    assert.deepEqual(ack.arg.data, { _placeholder: true, num: 0 });
    assert.deepEqual(Buffer.from(await back), sent);
  });

  test(`${name}: a burst arrives whole and in order`, async (t) => {
    const socket = await connected(open('/', { transports }));
    t.after(() => socket.close());
    const n = 3000;
    const got = items(socket, n);
    assert.deepEqual(await socket.timeout(WAIT).emitWithAck('burst', { n }), { queued: n });
    assert.deepEqual((await got).map((d) => d.i), [...Array(n).keys()]);
  });

  test(`${name}: the heartbeat keeps an idle connection up`, async (t) => {
    const socket = await connected(open('/', { transports }));
    t.after(() => socket.close());
    let pings = 0;
    socket.io.engine.on('ping', () => pings++);
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok(pings >= 4, `${pings} pings in 2 s`);
    assert.equal(socket.connected, true);
    assert.deepEqual(await socket.timeout(WAIT).emitWithAck('echo', 1), 1);
  });

  test(`${name}: refusals are connect_errors with the server's message`, async () => {
    const refused = open('/admin', { transports });
    const err = await next(refused, 'connect_error');
    refused.close();
    assert.equal(err.message, '401 unauthorized');
    assert.deepEqual(err.data, { ns: '/admin' });
    const unknown = open('/nope', { transports });
    const err2 = await next(unknown, 'connect_error');
    unknown.close();
    assert.equal(err2.message, 'Invalid namespace');
  });

  test(`${name}: the server ends a socket`, async () => {
    const socket = await connected(open('/', { transports }));
    const gone = next(socket, 'disconnect');
    socket.emit('close-me');
    assert.equal(await gone, 'io server disconnect');
    socket.close();
  });

  test(`${name}: a closed queue tells why, then disconnects`, async () => {
    const socket = await connected(open('/', { transports }));
    const closing = next(socket, 'closing');
    const gone = next(socket, 'disconnect');
    socket.emit('slow');
    assert.deepEqual(await closing, { reason: 'slow consumer' });
    assert.equal(await gone, 'io server disconnect');
    socket.close();
  });
}

test('upgrade: polling, then websocket, with nothing lost on the way', async (t) => {
  // The server queues the burst as soon as the socket joins, while the client is
  // still probing the WebSocket: it leaves partly by polling, partly by WebSocket.
  const n = 3000;
  const socket = open('/', { transports: ['polling', 'websocket'], auth: { token: 'good', burst: n } });
  t.after(() => socket.close());
  const got = items(socket, n);
  const upgraded = next(socket.io, 'open').then(() => next(socket.io.engine, 'upgrade'));
  await connected(socket);
  await upgraded;
  assert.equal(socket.io.engine.transport.name, 'websocket');
  assert.deepEqual((await got).map((d) => d.i), [...Array(n).keys()]);
  assert.deepEqual(await socket.timeout(WAIT).emitWithAck('echo', 'after'), 'after');
});

test('reconnection: a dropped transport reconnects and works again', async (t) => {
  const socket = open('/', { transports: ['websocket'], reconnection: true, reconnectionDelay: 50 });
  t.after(() => socket.close());
  await connected(socket);
  const first = socket.id;
  const gone = next(socket, 'disconnect');
  const again = next(socket, 'connect');
  // The network drops the connection (no close handshake).
  socket.io.engine.transport.ws.terminate();
  assert.match(await gone, /^transport (close|error)$/);
  await again;
  assert.notEqual(socket.id, first, 'a new session');
  assert.deepEqual(await socket.timeout(WAIT).emitWithAck('echo', 'back'), 'back');
});

test('namespaces share one connection and stay apart', async (t) => {
  const manager = new Manager(URL, { reconnection: false, transports: ['websocket'], timeout: WAIT });
  const root = manager.socket('/', { auth: { token: 'admin' } });
  const admin = manager.socket('/admin', { auth: { token: 'admin' } });
  t.after(() => {
    root.close();
    admin.close();
  });
  await Promise.all([connected(root), connected(admin)]);
  let rootSubscribed = 0;
  root.on('subscribed', () => rootSubscribed++);
  const subscribed = next(admin, 'subscribed');
  await admin.timeout(WAIT).emitWithAck('subscribe', { room: 'r' });
  assert.deepEqual(await subscribed, { room: 'r', ns: '/admin' });
  const adminItems = items(admin, 3);
  let rootItems = 0;
  root.on('item', () => rootItems++);
  await admin.timeout(WAIT).emitWithAck('burst', { n: 3 });
  assert.deepEqual((await adminItems).map((d) => d.ns), ['/admin', '/admin', '/admin']);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(rootItems, 0);
  assert.equal(rootSubscribed, 0);
  // Leaving one namespace keeps the other.
  admin.close();
  assert.deepEqual(await root.timeout(WAIT).emitWithAck('echo', 2), 2);
});
