// Shared by the browser tests: the server, tokens and browser from the environment
// (set by tests/browser.rs), REST helpers, and page helpers.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const URL = process.env.VIGIL_URL;
export const ADMIN = process.env.VIGIL_ADMIN_TOKEN;
export const VIEWER = process.env.VIGIL_VIEWER_TOKEN; // sub "alice"
export const PRODUCER = process.env.VIGIL_PRODUCER_TOKEN;
assert.ok(URL && ADMIN && VIEWER && PRODUCER, 'run through `cargo test --test browser`');

/** Fast reconnects and WebSocket probes, so fallback and recovery take seconds. */
export const FAST = { backoffBaseMs: 200, backoffMaxMs: 1000, wsRetryMs: 1500, pollTimeoutS: 5 };

export function launch() {
  return chromium.launch({
    executablePath: process.env.VIGIL_CHROMIUM || '/usr/bin/chromium',
    // Containers have no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

/** A signed-in page (the token in the fragment, as `./scripts/up --demo` prints it). */
export async function open(browser, token, { options = FAST, before, base = URL } = {}) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.addInitScript((o) => { window.VIGIL_OPTIONS = o; }, options);
  if (before) await before(page);
  await page.goto(`${base}/#token=${token}`);
  return page;
}

export async function rest(path, { token = ADMIN, method = 'GET', body, base = URL } = {}) {
  const resp = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, body: await resp.json() };
}

export async function ingest(events, base = URL) {
  const r = await rest('/api/v1/events', { token: PRODUCER, method: 'POST', body: events, base });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return r.body;
}

export const now = () => Date.now() / 1000;
export const uid = (p) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

/** The connection indicator's mode (`live`/`polling`/`offline`) reaches `mode`. */
export async function waitMode(page, mode, transport, timeout = 20000) {
  await page.waitForFunction(
    ([m, t]) => {
      const c = document.getElementById('conn');
      return c.dataset.mode === m && (!t || c.dataset.transport === t);
    },
    [mode, transport],
    { timeout },
  );
}

/** Narrows the task table to `text` (the list is virtualised: only rows in view exist). */
export async function search(page, text) {
  await page.fill('#search', text);
}

/** The row of task `id` shows `state`. */
export async function waitRow(page, id, state, timeout = 10000) {
  await page.waitForSelector(`#task-list .row[data-id="${id}"][data-state="${state}"]`, { timeout, state: 'attached' });
}
