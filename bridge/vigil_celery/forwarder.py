"""Forwarding events to Vigil: a bounded buffer, batches, and backoff while Vigil is away.

An event stays in the buffer until Vigil has acknowledged it (202), so a Vigil restart
loses nothing the bridge took from the broker. Only a full buffer drops events — the
oldest first — and every drop is counted and logged.
"""

import itertools
import logging
import random
import threading
import time
from collections import deque

log = logging.getLogger("vigil_celery")

#: Events held while Vigil is unreachable. At Celery's usual 4 events per task that is
#: 25 000 tasks, a few minutes of a busy cluster, in tens of megabytes.
DEFAULT_BUFFER = 100_000
#: Events per request: well under Vigil's 1000-event and 1 MiB limits with tracebacks.
DEFAULT_BATCH = 500
#: How long a batch waits to fill before it is sent, seconds: low enough to stay live.
DEFAULT_FLUSH = 0.2
#: Backoff while Vigil is away: first wait, cap, seconds.
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
#: Seconds between two "dropped" log lines, so a long outage does not flood the log.
DROP_LOG_EVERY = 10.0


class Forwarder:
    """A bounded buffer of events and the loop that sends it to Vigil."""

    def __init__(self, client, max_buffer=DEFAULT_BUFFER, batch=DEFAULT_BATCH, flush=DEFAULT_FLUSH):
        self.client = client
        self.max_buffer = max_buffer
        self.batch = batch
        self.flush = flush
        self._buf = deque()
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self.forwarded = 0
        self.refused = 0
        self.dropped = 0
        self._dropped_logged = 0
        self._drop_log_at = 0.0

    def put(self, event):
        """Buffers one event; drops the oldest when the buffer is full."""
        with self._cond:
            if len(self._buf) >= self.max_buffer:
                self._buf.popleft()
                self.dropped += 1
                self._log_drops()
            self._buf.append((next(self._seq), event))
            if len(self._buf) >= self.batch:
                self._cond.notify()

    def pending(self):
        with self._cond:
            return len(self._buf)

    def _log_drops(self):
        now = time.monotonic()
        if now - self._drop_log_at >= DROP_LOG_EVERY:
            log.warning(
                "buffer full (%d events): dropped %d events so far (%d since the last report)",
                self.max_buffer, self.dropped, self.dropped - self._dropped_logged)
            self._drop_log_at, self._dropped_logged = now, self.dropped

    def _next_batch(self, stop):
        with self._cond:
            if len(self._buf) < self.batch:
                self._cond.wait(self.flush)
            if stop.is_set() and not self._buf:
                return []
            return [item for item, _ in zip(self._buf, range(self.batch))]

    def _ack(self, last_seq):
        """Removes what Vigil acknowledged (events dropped meanwhile are already gone)."""
        with self._cond:
            while self._buf and self._buf[0][0] <= last_seq:
                self._buf.popleft()

    def run(self, stop, drain_secs=5.0):
        """Sends until `stop` is set, then for at most `drain_secs` more."""
        backoff = BACKOFF_START
        deadline = None
        while True:
            if stop.is_set():
                deadline = deadline or time.monotonic() + drain_secs
                if not self.pending() or time.monotonic() > deadline:
                    return
            batch = self._next_batch(stop)
            if not batch:
                continue
            if self.send(batch):
                backoff = BACKOFF_START
                continue
            stop.wait(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def send(self, batch):
        """Sends one batch; True when it left the buffer (acknowledged or unusable)."""
        try:
            self.client.renew_if_due()
            status, body = self.client.post_events([event for _, event in batch])
        except OSError as e:
            log.warning("Vigil unreachable (%s); %d events buffered", e, self.pending())
            return False
        if status == 202:
            self.forwarded += body.get("accepted", len(batch))
            for r in body.get("refused", []):
                self.refused += 1
                log.warning("Vigil refused event %s: %s", r.get("index"), r.get("error", {}).get("message"))
            self._ack(batch[-1][0])
            return True
        if status == 413 and len(batch) > 1:
            half = len(batch) // 2
            return self.send(batch[:half]) and self.send(batch[half:])
        if status in (400, 413, 422):
            self.refused += len(batch)
            log.error("Vigil refused a batch of %d events (%s): %s", len(batch), status, body)
            self._ack(batch[-1][0])
            return True
        if status in (401, 403):
            log.error("Vigil refused the token (%s): %s — events stay buffered; restart the "
                      "bridge with a valid producer token", status, body)
        else:
            log.warning("Vigil answered %s; %d events buffered", status, self.pending())
        return False
