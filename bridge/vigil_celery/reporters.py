"""What the bridge reports besides Celery's events, each every few seconds:

- broker queue depths (`queue-stats`), what Flower's broker page shows: a passive
  `queue_declare` through Celery's own connection gives the message count on every
  transport (AMQP answers it; kombu's Redis transport counts the queue's lists,
  priorities included, as Flower's `LLEN`s do). Consumers come from the broker where it
  knows them (AMQP), else from the workers' `inspect active_queues`;
- each worker's `inspect stats` and active queues (`worker-stats`): pool, prefetch,
  rusage — the worker details Flower shows;
- progress of running tasks from the result backend (`task-progress`): what
  `self.update_state(state='PROGRESS', meta=…)` stored, at a bounded rate.
"""

import logging
import time

log = logging.getLogger("vigil_celery")

#: Seconds between queue-depth reports ("every few seconds").
DEPTH_EVERY = 5.0
#: Seconds between `inspect stats` rounds: a broadcast each, so not too often.
STATS_EVERY = 10.0
#: Seconds `inspect` waits for workers to answer.
INSPECT_TIMEOUT = 1.0
#: Seconds between progress polls of the result backend.
PROGRESS_EVERY = 1.0
#: Running tasks polled per round at most: bounds the load on the result backend.
PROGRESS_MAX = 100


def loop(stop, every, fn, name):
    """Calls `fn` every `every` seconds until `stop`; failures are logged, not fatal."""
    while not stop.is_set():
        try:
            fn()
        except Exception as e:  # noqa: BLE001 — a broker hiccup must not end the reporter
            log.warning("%s failed: %s: %s", name, type(e).__name__, e)
        stop.wait(every)


class Reporters:
    """Queue depths, worker stats and progress, put on the forwarder like events."""

    def __init__(self, app, forward, seen):
        self.app = app
        self.forward = forward
        self.seen = seen
        self.consumers = {}
        self._progress = {}
        self._no_backend_logged = False

    def queue_names(self):
        names, _ = self.seen.snapshot()
        names.add(self.app.conf.task_default_queue)
        names.update(self.app.amqp.queues.keys())
        names.update(self.consumers)
        return sorted(n for n in names if n)

    def depths(self):
        now = time.time()
        with self.app.connection_for_read() as conn:
            for name in self.queue_names():
                depth, consumers = _declare_passive(conn, name)
                if not consumers:
                    consumers = self.consumers.get(name, 0)
                self.forward({"type": "queue-stats", "queue": name, "messages": depth,
                              "consumers": consumers, "timestamp": now})

    def worker_stats(self):
        inspect = self.app.control.inspect(timeout=INSPECT_TIMEOUT)
        stats = inspect.stats() or {}
        queues = inspect.active_queues() or {}
        counts = {}
        for host_queues in queues.values():
            for q in host_queues or []:
                counts[q.get("name")] = counts.get(q.get("name"), 0) + 1
        self.consumers = counts
        now = time.time()
        for host, s in stats.items():
            names = [q.get("name") for q in queues.get(host) or []]
            self.forward({"type": "worker-stats", "hostname": host, "stats": s,
                          "queues": names, "timestamp": now})

    def progress(self):
        backend = self.app.backend
        if type(backend).__name__ == "DisabledBackend":
            if not self._no_backend_logged:
                log.info("no result backend: progress comes only from task-progress events")
                self._no_backend_logged = True
            return
        _, running = self.seen.snapshot()
        self._progress = {k: v for k, v in self._progress.items() if k in running}
        for task_id in running[:PROGRESS_MAX]:
            meta = backend.get_task_meta(task_id)
            found = progress_of(meta.get("status"), meta.get("result"))
            if found is None or self._progress.get(task_id) == found:
                continue
            self._progress[task_id] = found
            pct, step = found
            event = {"type": "task-progress", "uuid": task_id, "progress": pct, "timestamp": time.time()}
            if step is not None:
                event["step"] = str(step)
            self.forward(event)


def progress_of(status, meta):
    """(percent, step) from what `update_state` stored: `{current, total}` or
    `{progress, step}` meta of a non-final state; None otherwise."""
    if status in (None, "PENDING", "SUCCESS", "FAILURE", "REVOKED") or not isinstance(meta, dict):
        return None
    step = meta.get("step")
    if isinstance(meta.get("progress"), (int, float)):
        return max(0.0, min(100.0, float(meta["progress"]))), step
    current, total = meta.get("current"), meta.get("total")
    if isinstance(current, (int, float)) and isinstance(total, (int, float)) and total > 0:
        return max(0.0, min(100.0, 100.0 * current / total)), step
    return None


def _declare_passive(conn, name):
    """(messages, consumers) of queue `name`; (0, 0) when the broker has no such queue."""
    channel = conn.channel()
    try:
        ok = channel.queue_declare(queue=name, passive=True)
        return ok.message_count, ok.consumer_count
    except Exception as e:  # noqa: BLE001 — kombu raises the transport's own NOT_FOUND
        if "not_found" in type(e).__name__.lower() or "NOT_FOUND" in str(e) or "404" in str(e):
            return 0, 0
        raise
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 — a channel the broker closed is closed
            pass
