// Who may connect where: refusals are connect_error with a message saying why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_NS, TOKENS, connect, refusal } from './helpers.js';

test('an admin connects to the admin namespace and the default one', async () => {
  for (const ns of [ADMIN_NS, '/']) {
    const { socket } = await connect(ns, TOKENS.admin);
    assert.ok(socket.connected);
    socket.close();
  }
});

test('a viewer is refused on the admin namespace, with the reason', async () => {
  const err = await refusal(ADMIN_NS, TOKENS.viewer);
  assert.match(err.message, /403/);
  assert.match(err.message, /needs role admin/);
});

test('a bad, expired or missing token is refused, with the reason', async () => {
  assert.match((await refusal(ADMIN_NS, 'not-a-token')).message, /401.*malformed token/);
  assert.match((await refusal('/', 'not-a-token')).message, /401.*malformed token/);
  assert.match((await refusal(ADMIN_NS, TOKENS.expired)).message, /401.*token expired/);
  assert.match((await refusal('/', undefined)).message, /401.*missing/);
});

test('a producer token cannot listen', async () => {
  assert.match((await refusal('/', TOKENS.producer)).message, /403/);
});
