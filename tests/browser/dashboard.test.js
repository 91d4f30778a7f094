// First sight: the page loads from `/`, shows the demo's deployment, and updates live.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ADMIN, URL, ingest, launch, now, open, search, uid, waitMode, waitRow,
} from './helpers.js';

let browser;
let page;
before(async () => {
  browser = await launch();
  page = await open(browser, ADMIN);
});
after(() => browser?.close());

test('/ redirects to the page, which signs in from the link and goes Live over WebSocket', async () => {
  await waitMode(page, 'live', 'ws');
  assert.equal(new globalThis.URL(page.url()).pathname, '/dashboard/');
  assert.equal(new globalThis.URL(page.url()).hash, '', 'the token is removed from the address bar');
  assert.equal(await page.textContent('#conn-mode'), 'Live');
  assert.match(await page.textContent('#who'), /root · admin/);
});

test("shows the demo's tasks, batch job, queues, workers and admin metrics", async () => {
  await page.waitForFunction(() => document.querySelectorAll('#task-list .row[data-id]').length >= 5, null, { timeout: 15000 });
  const states = await page.$$eval('#task-list .row[data-id]', (rows) => rows.map((r) => r.dataset.state));
  const known = ['RECEIVED', 'STARTED', 'PROGRESS', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'];
  assert.ok(states.every((s) => known.includes(s)), `states ${states}`);
  // The batch job with its progress and ETA.
  await page.waitForFunction(() => /\d+ \/ 30 batches · \d+% · ETA/.test(document.getElementById('jobs').textContent), null, { timeout: 15000 });
  assert.match(await page.textContent('#jobs'), /embeddings\.embed_all_documents/);
  // Queues (with the chart), workers with health, system metrics (admin).
  await page.waitForSelector('#queues tr[data-queue="premium"]');
  await page.waitForSelector('#workers tr[data-worker="celery@alpha"][data-health]');
  await page.waitForFunction(() => /cpu_percent/.test(document.getElementById('metrics').textContent), null, { timeout: 10000 });
  assert.ok(await page.isVisible('section.metrics'), 'admins see system metrics');
  // The breaker panel has a control per queue for admins.
  assert.ok(await page.isVisible('.breaker[data-queue="default"] button'));
});

test('a newly ingested event appears live, and a failure raises a notification', async () => {
  const id = uid('live');
  await search(page, id);
  await ingest({ type: 'task-received', uuid: id, name: 'browser.live', routing_key: 'default', timestamp: now() });
  await waitRow(page, id, 'RECEIVED');
  await ingest({ type: 'task-failed', uuid: id, exception: 'KeyError(42)', timestamp: now() + 1 });
  await waitRow(page, id, 'FAILURE');
  // Task failures go to the notification drawer (jobs also toast).
  await page.waitForFunction((t) => document.getElementById('notes-list').textContent.includes(t), 'Task failed: browser.live');
  assert.ok(Number(await page.textContent('#bell-count')) >= 1);
  await page.click('#bell');
  assert.ok(await page.isVisible('#notes-list'));
  await page.click('#bell');
  await search(page, '');
});

test('screenshot for the README', async () => {
  // Let the chart gather a few seconds of samples first.
  await page.waitForTimeout(8000);
  await page.screenshot({ path: process.env.VIGIL_SCREENSHOT, fullPage: true });
  assert.ok(URL);
});
