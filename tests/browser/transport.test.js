// The hybrid client: WebSocket → SSE → long-poll when blocked, back to WebSocket when it
// works again, and no gap or duplicate across forced reconnects.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ADMIN, FAST, URL, ingest, launch, now, open, rest, search, uid, waitMode, waitRow,
} from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(() => browser?.close());

test('falls back to Polling (SSE, then long-poll) when WebSocket is blocked, and back to Live', async () => {
  let blocked = false;
  let current = null;
  let sseBlocked = false;
  const page = await open(browser, ADMIN, {
    before: async (p) => {
      // A firewall in the middle: when blocked, every /ws handshake is closed at once.
      await p.routeWebSocket(/\/ws\?/, (ws) => {
        if (blocked) return ws.close();
        current = ws;
        return ws.connectToServer();
      });
      await p.route((u) => u.pathname === '/events', (r) => (sseBlocked ? r.abort() : r.continue()));
    },
  });
  await waitMode(page, 'live', 'ws');

  blocked = true;
  current.close();
  await waitMode(page, 'polling', 'sse');
  assert.equal(await page.textContent('#conn-mode'), 'Polling');
  const a = uid('sse');
  await search(page, a);
  await ingest({ type: 'task-received', uuid: a, name: 'browser.sse', timestamp: now() });
  await waitRow(page, a, 'RECEIVED');

  sseBlocked = true;
  await page.evaluate(() => window.vigil.forceReconnect());
  await waitMode(page, 'polling', 'poll');
  assert.match(await page.textContent('#conn-detail'), /long-poll/);
  const b = uid('poll');
  await search(page, b);
  await ingest({ type: 'task-received', uuid: b, name: 'browser.poll', timestamp: now() });
  await waitRow(page, b, 'RECEIVED');

  blocked = false;
  sseBlocked = false;
  await waitMode(page, 'live', 'ws');
  assert.equal(await page.textContent('#conn-mode'), 'Live');
  const c = uid('back');
  await search(page, c);
  await ingest({ type: 'task-received', uuid: c, name: 'browser.back', timestamp: now() });
  await waitRow(page, c, 'RECEIVED');
  const stats = await page.evaluate(() => window.vigil.stats);
  assert.equal(stats.duplicates, 0, JSON.stringify(stats));
  await page.close();
});

test('?block=ws shows the fallback by hand; vigil.block([]) lifts it', async () => {
  const page = await browser.newPage();
  await page.addInitScript((o) => { window.VIGIL_OPTIONS = o; }, FAST);
  await page.goto(`${URL}/dashboard/?block=ws#token=${ADMIN}`);
  await waitMode(page, 'polling', 'sse');
  assert.match(await page.textContent('#conn-detail'), /SSE fallback/);
  await page.evaluate(() => window.vigil.block([]));
  await waitMode(page, 'live', 'ws');
  await page.close();
});

test('shows Offline while nothing connects', async () => {
  const page = await open(browser, ADMIN, {
    before: async (p) => {
      await p.routeWebSocket(/\/ws\?/, (ws) => ws.close());
      await p.route(/\/(events|api\/v1\/events)\?/, (r) => r.abort());
    },
  });
  await waitMode(page, 'offline');
  assert.equal(await page.textContent('#conn-mode'), 'Offline');
  await page.close();
});

test('no gap and no duplicate across forced reconnects', async () => {
  const page = await open(browser, ADMIN);
  await waitMode(page, 'live', 'ws');
  const prefix = uid('gap');
  const ids = [];
  const before = await page.evaluate(() => window.vigil.stats);
  const from = before.lastSeq;
  for (let round = 0; round < 4; round += 1) {
    const batch = Array.from({ length: 5 }, (_, i) => `${prefix}-${round}-${i}`);
    ids.push(...batch);
    // Drop the connection, then ingest while it is down: the resume must bring them.
    await page.evaluate(() => window.vigil.forceReconnect());
    await ingest(batch.map((id) => ({ type: 'task-received', uuid: id, name: 'browser.gap', timestamp: now() })));
    await waitMode(page, 'live', 'ws');
  }
  await search(page, prefix);
  await page.waitForFunction((n) => document.querySelectorAll('#task-list .row[data-id]').length === n, ids.length, { timeout: 15000 });

  // Every one of their sequence numbers reached the page, exactly once.
  const { body: feed } = await rest(`/api/v1/events?since=${from}&limit=1000`);
  const seqs = feed.events.filter((e) => e.type === 'task_update' && ids.includes(e.key)).map((e) => e.seq);
  assert.equal(seqs.length, ids.length);
  const missing = await page.evaluate((s) => s.filter((q) => !window.vigil.client.seen.has(`${q} task_update`)), seqs);
  assert.deepEqual(missing, []);
  const after = await page.evaluate(() => window.vigil.stats);
  assert.equal(after.duplicates, 0, JSON.stringify(after));
  assert.ok(after.reconnects >= before.reconnects + 4, JSON.stringify(after));
  await page.close();
});

test('a client away longer than the history gets reset, refetches, and carries on', async () => {
  const base = process.env.VIGIL_SHORT_HISTORY_URL; // keeps 20 events
  let away = false;
  const page = await open(browser, ADMIN, {
    base,
    before: async (p) => {
      await p.routeWebSocket(/\/ws\?/, (ws) => (away ? ws.close() : ws.connectToServer()));
      await p.route(/\/(events|api\/v1\/events)\?/, (r) => (away ? r.abort() : r.continue()));
    },
  });
  await waitMode(page, 'live', 'ws');
  away = true;
  await page.evaluate(() => window.vigil.forceReconnect());
  await waitMode(page, 'offline');
  const prefix = uid('away');
  await ingest(Array.from({ length: 60 }, (_, i) => ({
    type: 'task-received', uuid: `${prefix}-${i}`, name: 'browser.away', timestamp: now(),
  })), base);
  away = false;
  await waitMode(page, 'live', 'ws');
  await search(page, prefix);
  await page.waitForFunction(() => /^60 of/.test(document.getElementById('task-count').textContent), null, { timeout: 15000 });
  const stats = await page.evaluate(() => window.vigil.stats);
  assert.ok(stats.resets >= 1, JSON.stringify(stats));
  // And it is live again from the new cursor.
  const id = uid('after');
  await search(page, id);
  await ingest({ type: 'task-received', uuid: id, name: 'browser.after', timestamp: now() }, base);
  await waitRow(page, id, 'RECEIVED');
  await page.close();
});
