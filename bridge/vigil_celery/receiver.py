"""Reading the cluster's event stream with Celery's own `EventReceiver` — the way Flower
reads it — on any broker Celery supports, reconnecting when the broker goes away."""

import logging
import random
import threading

log = logging.getLogger("vigil_celery")

#: Backoff while the broker is away: first wait, cap, seconds.
RECONNECT_START = 0.5
RECONNECT_MAX = 15.0
#: Running tasks remembered for progress polling; past it the oldest are forgotten.
MAX_RUNNING = 10_000
#: Task events after which a task no longer runs.
DONE = {"task-succeeded", "task-failed", "task-revoked", "task-retried", "task-rejected"}


class Seen:
    """What the bridge learns from the stream: queue names and the running tasks."""

    def __init__(self, queues=()):
        self._lock = threading.Lock()
        self.queues = set(queues)
        self.running = {}

    def observe(self, event):
        kind = event.get("type", "")
        with self._lock:
            if kind == "task-sent" and event.get("queue"):
                self.queues.add(event["queue"])
            elif kind == "task-started":
                if len(self.running) >= MAX_RUNNING:
                    self.running.pop(next(iter(self.running)))
                self.running[event.get("uuid")] = None
            elif kind in DONE:
                self.running.pop(event.get("uuid"), None)

    def snapshot(self):
        with self._lock:
            return set(self.queues), list(self.running)


class Receiver:
    """Runs Celery's `EventReceiver` and hands every event on, unchanged."""

    def __init__(self, app, on_event):
        self.app = app
        self.on_event = on_event
        self.received = 0
        self._recv = None

    def _handle(self, event):
        self.received += 1
        self.on_event(event)

    def run(self, stop):
        delay = RECONNECT_START
        while not stop.is_set():
            try:
                with self.app.connection_for_read() as conn:
                    conn.ensure_connection(max_retries=1)
                    self._recv = self.app.events.Receiver(conn, handlers={"*": self._handle})
                    log.info("reading events from %s", conn.as_uri())
                    delay = RECONNECT_START
                    self._recv.capture(limit=None, timeout=None, wakeup=True)
            except Exception as e:  # noqa: BLE001 — any broker error means reconnect
                if stop.is_set():
                    break
                log.warning("event stream lost (%s: %s); reconnecting in %.1fs", type(e).__name__, e, delay)
                stop.wait(delay * (0.5 + random.random()))
                delay = min(delay * 2, RECONNECT_MAX)

    def stop(self):
        if self._recv is not None:
            self._recv.should_stop = True
