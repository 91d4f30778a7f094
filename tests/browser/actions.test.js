// What a user does: the breaker control (seed 002), revoke with optimistic update and
// rollback (seed 001), and signing in with what the role may see.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ADMIN, PRODUCER, URL, VIEWER, ingest, launch, now, open, rest, search, uid, waitMode, waitRow,
} from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(() => browser?.close());

const breaker = (page, q, state) => page.waitForSelector(`.breaker[data-queue="${q}"][data-state="${state}"]`, { timeout: 10000 });

test('the breaker toggle opens the queue via REST; a close from elsewhere shows live', async () => {
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  await breaker(page, 'normal', 'closed');
  await page.click('.breaker[data-queue="normal"] button');
  await breaker(page, 'normal', 'open');
  const status = await rest('/api/v1/queue/circuit-breaker-status?queue=normal');
  assert.equal(status.body.data.state, 'open');
  assert.match(status.body.data.metadata.reason, /Manual toggle from dashboard/);
  // The server now refuses jobs submitted to the queue.
  const refused = await rest('/api/admin/celery/jobs/demo.job', { method: 'POST', body: { queue: 'normal' } });
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error.code, 'circuit_open');

  // Closed by someone else (REST, not this page): the pushed event updates the page.
  const closed = await rest('/api/v1/queue/close-circuit-breaker', { method: 'POST', body: { queue: 'normal', reason: 'ops' } });
  assert.equal(closed.status, 200);
  await breaker(page, 'normal', 'closed');
  await page.waitForFunction(() => document.getElementById('toasts').textContent.includes('Breaker normal closed'));
  await page.close();
});

test('revoke is shown at once, rolled back when refused, and kept when accepted', async () => {
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  const id = uid('rv');
  await search(page, id);
  await ingest({ type: 'task-received', uuid: id, name: 'browser.revoke', routing_key: 'default', timestamp: now() });
  await waitRow(page, id, 'RECEIVED');

  // The server refuses (as if the task had just finished): slow, so the optimistic state shows.
  let release;
  const gate = new Promise((r) => { release = r; });
  await page.route(/\/revoke$/, async (r) => {
    await gate;
    await r.fulfill({
      status: 409,
      contentType: 'application/json',
      body: JSON.stringify({ error: { status: 409, code: 'conflict', message: 'task already finished' } }),
    });
  });
  await page.click(`.row[data-id="${id}"] button`);
  await waitRow(page, id, 'REVOKED');
  assert.match(await page.textContent(`.row[data-id="${id}"] .badge`), /REVOKED…/);
  release();
  await waitRow(page, id, 'RECEIVED');
  await page.waitForFunction(() => /refused — 409: task already finished/.test(document.getElementById('toasts').textContent));

  await page.unroute(/\/revoke$/);
  await page.click(`.row[data-id="${id}"] button`);
  await waitRow(page, id, 'REVOKED');
  await page.waitForFunction((i) => !document.querySelector(`.row[data-id="${i}"]`).classList.contains('pending'), id);
  const task = await rest(`/api/v1/tasks/${id}`);
  assert.equal(task.body.state, 'REVOKED');
  await page.close();
});

test('sign-in refuses producer and bad tokens; a viewer sees only its own tasks and no admin controls', async () => {
  const page = await browser.newPage();
  await page.goto(`${URL}/dashboard/`);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#token-input', PRODUCER);
  await page.click('#login button');
  await page.waitForFunction(() => /Producer tokens/.test(document.getElementById('login-error').textContent));
  await page.fill('#token-input', 'not-a-token');
  await page.click('#login button');
  await page.waitForFunction(() => /not a Vigil token/.test(document.getElementById('login-error').textContent));
  assert.ok(await page.isHidden('#app'));

  const mine = uid('alice');
  const theirs = uid('bob');
  await page.fill('#token-input', VIEWER);
  await page.click('#login button');
  await waitMode(page, 'live', 'ws');
  assert.match(await page.textContent('#who'), /alice · viewer/);
  await ingest([
    { type: 'task-received', uuid: theirs, name: 'browser.private', owner: 'bob', timestamp: now() },
    { type: 'task-received', uuid: mine, name: 'browser.mine', owner: 'alice', timestamp: now() },
  ]);
  await search(page, 'browser.');
  await waitRow(page, mine, 'RECEIVED');
  const owners = await page.evaluate(() => [...window.vigil.store.tasks.values()].map((t) => t.owner));
  assert.ok(owners.length > 0 && owners.every((o) => o === 'alice'), `owners ${owners}`);
  assert.equal(await page.$(`.row[data-id="${theirs}"]`), null);
  assert.ok(await page.isHidden('section.metrics'), 'no system metrics for viewers');
  assert.equal(await page.$$eval('.breaker button', (b) => b.length), 0, 'no breaker control');
  assert.equal(await page.$$eval('#task-list .row[data-id] button:not([hidden])', (b) => b.length), 0, 'no revoke');
  // Signing out forgets the token.
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])');
  assert.equal(await page.evaluate(() => localStorage.getItem('vigil.token')), null);
  await page.close();
});
