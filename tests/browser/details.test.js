// The detail drawer: a task's fields, attempts and events in order; a worker's details
// and the control buttons, which publish commands for the bridge.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN, PRODUCER, ingest, launch, now, open, rest, search, uid, waitMode, waitRow } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(() => browser?.close());

test('a task opens in the drawer with its fields, attempts and every event', async () => {
  const id = uid('drawer');
  const t = now();
  await ingest([
    { type: 'task-sent', uuid: id, name: 'browser.detail', queue: 'default', args: "('report-7',)", kwargs: '{}', retries: 0, timestamp: t },
    { type: 'task-received', uuid: id, name: 'browser.detail', hostname: 'celery@drawer', retries: 0, timestamp: t + 0.1 },
    { type: 'task-started', uuid: id, hostname: 'celery@drawer', timestamp: t + 0.2 },
    { type: 'task-checkpoint', uuid: id, stage: 'halfway', hostname: 'celery@drawer', timestamp: t + 0.3 },
    { type: 'task-failed', uuid: id, exception: "ValueError('nope')", traceback: 'Traceback (most recent call last):\n  boom', hostname: 'celery@drawer', timestamp: t + 0.4 },
  ]);
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  await search(page, id);
  await waitRow(page, id, 'FAILURE');
  await page.click(`.row[data-id="${id}"] .name strong`);
  await page.waitForFunction(() => document.getElementById('drawer').textContent.includes('task-checkpoint'));
  const drawer = await page.textContent('#drawer');
  for (const want of ["('report-7',)", "ValueError('nope')", 'Traceback', 'celery@drawer', 'halfway', 'Attempts (1)']) {
    assert.ok(drawer.includes(want), `${want} missing from the drawer`);
  }
  const order = await page.$$eval('#drawer table:last-of-type tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(order, ['task-sent', 'task-received', 'task-started', 'task-checkpoint', 'task-failed']);
  await page.close();
});

test('a worker opens in the drawer and its controls publish commands', async () => {
  const host = `celery@${uid('ctl')}`;
  await ingest({ type: 'worker-online', hostname: host, pid: 4242, sw_ident: 'py-celery', sw_ver: '5.7.0', sw_sys: 'Linux', freq: 2, timestamp: now() });
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  await page.waitForSelector(`#workers tr[data-worker="${host}"]`);
  const since = (await rest('/api/v1/events?timeout=0&topics=commands')).body.seq;
  await page.click(`#workers tr[data-worker="${host}"] td:first-child`);
  await page.waitForFunction(() => document.getElementById('drawer').textContent.includes('4242'));
  assert.match(await page.textContent('#drawer'), /py-celery 5\.7\.0 Linux/);
  await page.fill('#drawer input[name="n"]', '2');
  await page.click('#drawer button[data-command="pool_grow"]');
  await page.waitForFunction(() => document.getElementById('toasts').textContent.includes('pool_grow on'));
  const feed = await rest(`/api/v1/events?since=${since}&timeout=5&topics=commands`, { token: PRODUCER });
  const cmd = feed.body.events.map((e) => e.data).find((d) => d.action === 'pool_grow');
  assert.deepEqual([cmd.destination, cmd.arguments], [[host], { n: 2 }]);
  await page.close();
});

test('a click held while the workers table redraws still opens the worker', async () => {
  // A user's press lasts ~100 ms and the table redraws every second and on every worker
  // event: a row rebuilt between mouse-down and mouse-up would swallow the click.
  const host = `celery@${uid('held')}`;
  await ingest({ type: 'worker-online', hostname: host, pid: 4343, sw_ident: 'py-celery', sw_ver: '5.7.0', sw_sys: 'Linux', freq: 2, timestamp: now() });
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  const row = `#workers tr[data-worker="${host}"]`;
  const cell = await page.waitForSelector(`${row} td:first-child`);
  await cell.scrollIntoViewIfNeeded();
  const box = await cell.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  // A redraw while the button is down: this worker's heartbeat, seen in its row.
  await ingest({ type: 'worker-heartbeat', hostname: host, active: 7, processed: 31, timestamp: now() });
  await page.waitForFunction((sel) => document.querySelector(sel)?.cells[6].textContent === '31', row);
  await page.mouse.up();
  await page.waitForFunction(() => document.getElementById('drawer').textContent.includes('4343'), null, { timeout: 5000 });
  await page.close();
});
