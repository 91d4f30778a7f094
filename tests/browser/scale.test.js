// Thousands of tasks: the table stays a window of rows (virtualised), and scrolling
// to the end shows the last ones.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ADMIN, ingest, launch, now, open, rest, search, uid, waitMode,
} from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(() => browser?.close());

test('thousands of rows: only a window of them is in the page, scrolling shows the rest', async () => {
  const prefix = uid('bulk');
  const t0 = now();
  for (let b = 0; b < 2; b += 1) {
    // A minute ahead (so they are the newest 1000 whatever the demo does meanwhile),
    // a second apart per batch and a millisecond apart within, so the order is known.
    await ingest(Array.from({ length: 1000 }, (_, i) => ({
      type: 'task-received', uuid: `${prefix}-${b}-${String(i).padStart(4, '0')}`,
      name: 'browser.bulk', routing_key: 'default', timestamp: t0 + 60 + b + i / 1000,
    })));
  }
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  await search(page, prefix);
  // The first paint fetches the newest 1000 tasks.
  await page.waitForFunction(() => /^1000 of/.test(document.getElementById('task-count').textContent), null, { timeout: 15000 });
  const inDom = await page.$$eval('#task-list .row[data-id]', (r) => r.length);
  assert.ok(inDom > 10 && inDom < 80, `${inDom} rows in the DOM for 1000 tasks`);
  await page.$eval('#task-list', (v) => { v.scrollTop = v.scrollHeight; });
  // Newest first: the bottom of the list is the oldest of the batch shown.
  await page.waitForSelector(`#task-list .row[data-id="${prefix}-1-0000"]`, { timeout: 5000 });

  // More arrive live: they join the same table without growing the DOM.
  await ingest(Array.from({ length: 200 }, (_, i) => ({
    type: 'task-received', uuid: `${prefix}-2-${i}`, name: 'browser.bulk', timestamp: now(),
  })));
  await page.waitForFunction(() => /^1200 of/.test(document.getElementById('task-count').textContent), null, { timeout: 20000 });
  const after200 = await page.$$eval('#task-list .row', (r) => r.length);
  assert.ok(after200 < 80, `${after200} row elements`);
  await page.close();
});

test('older tasks page in from the server on request, and counts cover everything held', async () => {
  const prefix = uid('older');
  const t0 = now();
  // Two minutes ahead of everything else, so these 1300 are the newest the page loads.
  for (let b = 0; b < 2; b += 1) {
    await ingest(Array.from({ length: 650 }, (_, i) => ({
      type: 'task-received', uuid: `${prefix}-${b}-${String(i).padStart(4, '0')}`,
      name: 'browser.older', routing_key: 'default', timestamp: t0 + 120 + b * 10 + i / 1000,
    })));
  }
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  // "<shown> of <loaded> loaded · <stored> stored".
  const held = () => page.$eval('#task-count', (e) => parseInt(e.textContent.split(' of ')[1], 10));
  const before = await held();
  assert.ok(await page.$eval('#load-older', (b) => !b.hidden), 'the server holds more than the first page');
  await page.click('#load-older');
  await page.waitForFunction((n) => parseInt(document.getElementById('task-count').textContent.split(' of ')[1], 10) >= n + 300, before, { timeout: 10000 });
  await search(page, prefix);
  await page.waitForFunction(() => /^1300 of/.test(document.getElementById('task-count').textContent), null, { timeout: 10000 });
  // The count cards are the server's counters, not the rows in the page.
  const received = await page.$eval('#counts .s-RECEIVED b', (e) => Number(e.textContent));
  const listed = (await rest('/api/v1/tasks?state=RECEIVED&limit=1')).body;
  assert.ok(received >= 1300 && Math.abs(received - listed.total) < 200, `${received} vs ${listed.total}`);
  // The task count says what the server holds, not only what the page loaded.
  const stored = () => page.$eval('#task-count', (e) => Number(/· (\d+) stored/.exec(e.textContent)?.[1]));
  await page.waitForFunction(() => {
    const cards = [...document.querySelectorAll('#counts b')].reduce((n, b) => n + Number(b.textContent), 0);
    return document.getElementById('task-count').textContent.endsWith(`· ${cards} stored`);
  }, null, { timeout: 10000 });
  assert.ok(await stored() > await held(), `${await stored()} stored, more than the ${await held()} loaded`);
  await page.close();
});
