// Identity-provider tokens (RS256, ES256) on Socket.IO with the official client. Run by
// `cargo test --test idp_tokens`, which starts a host pinned to the algorithm and passes
// tokens signed with the test keys in tests/fixtures/jwt/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through \`cargo test --test idp_tokens\``);
  return v;
};
const URL = env('VIGIL_URL');
const ADMIN = env('VIGIL_IDP_ADMIN_TOKEN');
const PRODUCER = env('VIGIL_IDP_PRODUCER_TOKEN');
/** `{case: [token, expected message part]}`: tokens this host must refuse. */
const REFUSED = JSON.parse(env('VIGIL_IDP_REFUSED'));
const WAIT_MS = 10_000;
/** Per test: a hung connection fails the test instead of holding the process. */
const TEST_MS = 60_000;

function open(token, transports) {
  const socket = io(`${URL}/ws/celery/tasks`, {
    auth: { token }, transports, reconnection: false, forceNew: true, timeout: WAIT_MS,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function ingest(uuid) {
  const res = await fetch(`${URL}/api/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PRODUCER}`, 'content-type': 'application/json' },
    body: JSON.stringify([{ type: 'task-received', uuid, name: 'idp.check' }]),
  });
  assert.equal(res.status, 202, JSON.stringify(await res.json()));
}

for (const transports of [['websocket'], ['polling']]) {
  test(`an identity provider's admin token connects (${transports}) and gets updates`, { timeout: TEST_MS }, async () => {
    const socket = await open(ADMIN, transports);
    try {
      const ack = await socket.timeout(WAIT_MS).emitWithAck('subscribe', { room: 'celery:tasks' });
      assert.ok(ack, 'subscribe acknowledged');
      const uuid = `idp-${transports}-${process.pid}-${Date.now()}`;
      const seen = new Promise((resolve) => {
        const check = (payload) => payload?.data?.id === uuid && resolve(payload);
        socket.on('task_update', check);
        socket.on('batch_update', (b) => b.updates.forEach((u) => check(u.data)));
      });
      await ingest(uuid);
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no task_update')), WAIT_MS);
      });
      await Promise.race([seen, timeout]);
      clearTimeout(timer);
    } finally {
      socket.close();
    }
  });
}

test('tokens the configuration does not accept are refused, with the reason', { timeout: TEST_MS }, async () => {
  for (const [name, [token, reason]] of Object.entries(REFUSED)) {
    const err = await open(token, ['websocket']).then(
      (s) => { s.close(); return new Error('connected'); },
      (e) => e,
    );
    assert.match(err.message, /401/, `${name}: ${err.message}`);
    assert.ok(err.message.includes(reason), `${name}: ${err.message} lacks "${reason}"`);
  }
});
