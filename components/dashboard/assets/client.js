// The hybrid push client of seeds 000/001, on Vigil's native endpoints:
// WebSocket (`/ws`) first, then Server-Sent Events (`/events`), then long-poll
// (`GET /api/v1/events?since=&timeout=`). Every (re)connect resumes from the last
// sequence number seen, so nothing is missed; events seen twice (replay overlap while
// switching transports) are dropped by `seq` and type. While on a fallback, WebSocket is
// probed periodically and taken back as soon as it works.
// Status for the indicator: `live` (WebSocket), `polling` (a fallback: SSE or long-poll),
// `offline` (between attempts).

/** Tuning; a page may override any of these with `window.VIGIL_OPTIONS` (the tests do). */
export const DEFAULTS = {
  /** First reconnect delay; doubled per failed attempt (full jitter, seed 001). */
  backoffBaseMs: 500,
  /** Longest reconnect delay. */
  backoffMaxMs: 15000,
  /** Consecutive failures to open a transport before the next one down is tried. */
  failuresBeforeFallback: 2,
  /** How often a fallback probes WebSocket again (jittered ±25 %). */
  wsRetryMs: 30000,
  /** Long-poll wait, seconds (the server allows ≤ 300). */
  pollTimeoutS: 25,
  /** WebSocket ping period; a socket silent for 3 periods is treated as dead. */
  pingMs: 15000,
  /** How many recent sequence numbers are remembered to drop duplicates. */
  seenWindow: 20000,
};

const LADDER = ['ws', 'sse', 'poll'];

/** SSE event names Vigil publishes (EventSource needs one listener per name). */
const SSE_EVENTS = [
  'task_update', 'batch_progress', 'queue_stats', 'worker_registered',
  'worker_deregistered', 'worker_status_change', 'worker_status_update',
  'circuit_breaker', 'metrics_update', 'batch_update', 'revoke', 'submit',
];

/** Delay before attempt `n` (0-based): random in [½, 1] × min(max, base·2ⁿ). */
export function backoff(n, opts) {
  const cap = Math.min(opts.backoffMaxMs, opts.backoffBaseMs * 2 ** Math.min(n, 16));
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

export class HybridClient {
  /**
   * @param {object} p
   * @param {string} p.token   JWT (viewer or admin)
   * @param {number} p.since   sequence to resume after (from the snapshot)
   * @param {(ev: object) => void} p.onEvent   one envelope `{seq,type,data,…}`
   * @param {(seq: number) => Promise<number>} p.onReset   refetch; returns the new cursor
   * @param {(status: object) => void} p.onStatus   `{mode, transport, detail}`
   * @param {(msg: string) => void} p.onAuthError   the token was refused
   */
  constructor(p) {
    this.p = p;
    this.opts = { ...DEFAULTS, ...(window.VIGIL_OPTIONS || {}) };
    this.lastSeq = p.since;
    this.seen = new Set();
    this.stats = { received: 0, duplicates: 0, reconnects: 0, resets: 0, opened: 0 };
    this.rung = LADDER.indexOf(this.opts.transport || 'ws');
    if (this.rung < 0) this.rung = 0;
    this.failures = 0; // consecutive failures to open on the current rung
    this.attempt = 0; // consecutive failures overall (backoff exponent)
    this.conn = null; // the open (or opening) transport
    this.probe = null; // a WebSocket being tried while on a fallback
    this.timers = new Set();
    this.stopped = false;
    /** Transports treated as unreachable (`?block=ws`, to see the fallback by hand). */
    this.blocked = new Set(p.block || []);
  }

  /** Treats `kinds` (`ws`, `sse`, `poll`) as unreachable from now on; `[]` lifts it. */
  block(kinds) {
    this.blocked = new Set(kinds);
    if (this.blocked.has(this.transport)) this.forceReconnect();
  }

  start() {
    this.status('offline', null, 'connecting…');
    this.open();
  }

  stop() {
    this.stopped = true;
    this.timers.forEach(clearTimeout);
    this.timers.clear();
    this.conn?.close();
    this.probe?.close();
  }

  /** Drops the current connection as a network failure would; it reconnects and resumes. */
  forceReconnect() {
    this.conn?.close();
    this.lost(this.conn);
  }

  get transport() {
    return LADDER[this.rung];
  }

  // ---- connection life cycle -------------------------------------------------------

  open() {
    if (this.stopped) return;
    const kind = this.transport;
    if (this.blocked.has(kind)) {
      // As if a proxy refused the connection: fail, and let the ladder move on.
      const conn = { kind, isOpen: false, dead: false, close() {} };
      this.conn = conn;
      this.later(0, () => this.lost(conn));
      return;
    }
    const conn = kind === 'ws' ? this.openWs(this.lastSeq, false)
      : kind === 'sse' ? this.openSse() : this.openPoll();
    this.conn = conn;
  }

  /** The transport said hello: reset the failure counts and show the mode. */
  opened(conn) {
    if (conn !== this.conn) return;
    conn.isOpen = true;
    this.failures = 0;
    this.attempt = 0;
    this.stats.opened += 1;
    const ws = conn.kind === 'ws';
    const detail = ws ? 'WebSocket' : conn.kind === 'sse' ? 'SSE fallback' : 'long-poll fallback';
    this.status(ws ? 'live' : 'polling', conn.kind, detail);
    if (!ws) this.scheduleProbe();
  }

  /** `conn` ended: reconnect (same rung if it had opened, else maybe one rung down). */
  lost(conn) {
    if (this.stopped || !conn || conn !== this.conn || conn.dead) return;
    conn.dead = true;
    conn.close();
    this.conn = null;
    this.stats.reconnects += 1;
    if (!conn.isOpen) {
      this.failures += 1;
      if (this.failures >= this.opts.failuresBeforeFallback) {
        this.failures = 0;
        // Down the ladder; from the bottom, start again at the top.
        this.rung = (this.rung + 1) % LADDER.length;
      }
    }
    const delay = backoff(this.attempt, this.opts);
    this.attempt += 1;
    this.status('offline', null, `reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.later(delay, () => this.open());
  }

  later(ms, fn) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  status(mode, transport, detail) {
    this.mode = mode;
    this.p.onStatus({ mode, transport, detail });
  }

  // ---- events --------------------------------------------------------------------

  /** One message from any transport: a single envelope, a batch, a reset or a hello. */
  message(conn, msg) {
    if (conn.dead || !msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'connected':
        return this.opened(conn);
      case 'pong':
      case 'error':
        return undefined;
      case 'reset':
        return this.reset(msg.seq);
      case 'batch_update':
        // Seed 001's rate-limited batch: each update is a full envelope with its seq.
        (msg.updates || []).forEach((u) => this.deliver(u));
        return undefined;
      default:
        return this.deliver(msg);
    }
  }

  deliver(ev) {
    const seq = Number(ev && ev.seq);
    if (!Number.isFinite(seq)) return;
    // A log entry's events share its seq (a `task_update` and the `job-*` derived from
    // it): an event is a duplicate when the same seq came with the same type.
    const key = `${seq} ${ev.type}`;
    if (this.seen.has(key)) {
      this.stats.duplicates += 1;
      return;
    }
    this.seen.add(key);
    if (this.seen.size > this.opts.seenWindow) {
      const floor = this.lastSeq - this.opts.seenWindow;
      for (const k of this.seen) if (parseInt(k, 10) < floor) this.seen.delete(k);
    }
    if (seq > this.lastSeq) this.lastSeq = seq;
    this.stats.received += 1;
    this.p.onEvent(ev);
  }

  /** Too far behind the server's history: refetch the snapshot, continue from its seq. */
  async reset(seq) {
    this.stats.resets += 1;
    try {
      const cursor = await this.p.onReset(seq);
      this.lastSeq = Math.max(Number(cursor) || 0, 0);
      this.seen.clear();
    } catch (e) {
      console.warn('[vigil] resync failed', e);
    }
    this.forceReconnect();
  }

  // ---- WebSocket -------------------------------------------------------------------

  wsUrl(since) {
    const u = new URL('/ws', location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('access_token', this.p.token);
    u.searchParams.set('since', String(since));
    return u.toString();
  }

  /** A WebSocket transport; as a probe it only reports whether it opened. */
  openWs(since, asProbe) {
    const ws = new WebSocket(this.wsUrl(since));
    let lastHeard = Date.now();
    const ping = setInterval(() => {
      if (Date.now() - lastHeard > 3 * this.opts.pingMs) {
        ws.close();
      } else if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'ping', timestamp: Date.now() }));
      }
    }, this.opts.pingMs);
    const conn = {
      kind: 'ws',
      probe: asProbe,
      isOpen: false,
      dead: false,
      close: () => {
        clearInterval(ping);
        ws.close();
      },
    };
    ws.onmessage = (e) => {
      lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (conn.probe && msg.type === 'connected') this.probeOpened(conn);
      else this.message(conn, msg);
    };
    ws.onclose = () => {
      clearInterval(ping);
      if (conn.probe) this.probeFailed(conn);
      else this.lost(conn);
    };
    return conn;
  }

  /** While on a fallback: try WebSocket again every `wsRetryMs` (jittered). */
  scheduleProbe() {
    if (this.probeTimer) return;
    const jitter = 0.75 + Math.random() * 0.5;
    this.probeTimer = true;
    this.later(this.opts.wsRetryMs * jitter, () => {
      this.probeTimer = false;
      if (this.stopped || this.transport === 'ws' || this.probe || !this.conn?.isOpen) return;
      if (this.blocked.has('ws')) {
        this.scheduleProbe();
        return;
      }
      this.probe = this.openWs(this.lastSeq, true);
    });
  }

  probeFailed(conn) {
    if (conn !== this.probe) return;
    this.probe = null;
    if (!this.stopped && this.transport !== 'ws') this.scheduleProbe();
  }

  /**
   * The probe works: leave the fallback and reconnect over WebSocket from the cursor as
   * it is now. (Promoting the probe itself would replay what the fallback delivered
   * since the probe was opened: harmless, dropped by seq, but needless traffic.)
   */
  probeOpened(probe) {
    this.probe = null;
    probe.close();
    const old = this.conn;
    if (old) {
      old.dead = true;
      old.close();
    }
    this.rung = 0;
    this.failures = 0;
    this.open();
  }

  // ---- Server-Sent Events ----------------------------------------------------------

  openSse() {
    const u = new URL('/events', location.href);
    u.searchParams.set('access_token', this.p.token);
    u.searchParams.set('since', String(this.lastSeq));
    const es = new EventSource(u.toString());
    const conn = { kind: 'sse', isOpen: false, dead: false, close: () => es.close() };
    const on = (e) => {
      try {
        this.message(conn, JSON.parse(e.data));
      } catch {
        /* a malformed frame is skipped, the stream goes on */
      }
    };
    es.addEventListener('connected', () => this.opened(conn));
    SSE_EVENTS.forEach((name) => es.addEventListener(name, on));
    es.addEventListener('reset', (e) => {
      let seq = 0;
      try {
        seq = JSON.parse(e.data).seq;
      } catch {
        /* reset without a body: refetch anyway */
      }
      this.reset(seq);
    });
    // The server ends the stream with `disconnect`; EventSource would reconnect by
    // itself with Last-Event-ID, but our own loop does it, with backoff and the ladder.
    es.addEventListener('disconnect', () => this.lost(conn));
    es.onerror = () => this.lost(conn);
    return conn;
  }

  // ---- long-poll -------------------------------------------------------------------

  openPoll() {
    const ctl = new AbortController();
    const conn = { kind: 'poll', isOpen: false, dead: false, close: () => ctl.abort() };
    const loop = async () => {
      // The first request answers at once, so the indicator shows the mode without
      // waiting for an event (or the full timeout) on a quiet system.
      let wait = 0;
      while (!conn.dead) {
        const u = new URL('/api/v1/events', location.href);
        u.searchParams.set('since', String(this.lastSeq));
        u.searchParams.set('timeout', String(wait));
        wait = this.opts.pollTimeoutS;
        u.searchParams.set('limit', '500');
        const resp = await fetch(u, {
          headers: { authorization: `Bearer ${this.p.token}` },
          signal: ctl.signal,
        });
        const body = await resp.json().catch(() => null);
        if (resp.status === 401 || resp.status === 403) {
          conn.dead = true;
          this.p.onAuthError(body?.error?.message || 'token refused');
          return;
        }
        if (!resp.ok || !body) throw new Error(`feed answered ${resp.status}`);
        if (!conn.isOpen) this.opened(conn);
        if (body.reset) {
          await this.reset(body.seq);
          return;
        }
        (body.events || []).forEach((ev) => this.message(conn, ev));
      }
    };
    loop().catch(() => this.lost(conn));
    return conn;
  }
}
