"""The publish guard: `apply_async` to a queue whose Vigil breaker is open fails fast
with the breaker's reason, before anything reaches the broker.

Celery's `before_task_publish` signal cannot refuse a publish (Celery logs and swallows
exceptions raised by signal receivers), so the guard wraps the one function every
publish goes through, `app.amqp.send_task_message`, which runs just before the signal.
Vigil unreachable means the guard lets tasks through (and logs it): monitoring must not
take the application down.
"""

import logging
import threading
import time

from .client import VigilClient, VigilError

log = logging.getLogger("vigil_celery")

#: Seconds a breaker's state is reused before Vigil is asked again: one request per queue
#: per interval, however many tasks are published, and a change is seen within it.
GUARD_CACHE_SECS = 2.0
#: Seconds a breaker check may take; the application is waiting.
GUARD_TIMEOUT = 1.0


class BreakerOpen(Exception):
    """The queue's circuit breaker is open in Vigil."""

    def __init__(self, queue, reason):
        self.queue = queue
        self.reason = reason
        super().__init__(f"the circuit breaker of queue `{queue}` is open: {reason or 'no reason given'}")


class Guard:
    """Breaker states per queue, cached for [GUARD_CACHE_SECS]."""

    def __init__(self, client, cache_secs=GUARD_CACHE_SECS):
        self.client = client
        self.cache_secs = cache_secs
        self._cache = {}
        self._lock = threading.Lock()

    def check(self, queue):
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(queue)
        if hit is None or now - hit[0] >= self.cache_secs:
            try:
                state, reason = self.client.breaker_state(queue)
            except (OSError, VigilError) as e:
                log.warning("breaker of %s unknown (%s); publishing anyway", queue, e)
                state, reason = "unknown", None
            hit = (now, state, reason)
            with self._lock:
                self._cache[queue] = hit
        if hit[1] == "open":
            raise BreakerOpen(queue, hit[2])


def install_guard(app, url, token, cache_secs=GUARD_CACHE_SECS):
    """Makes `apply_async`/`send_task` on `app` raise [BreakerOpen] for a queue whose
    breaker is open in Vigil. One line in the application; returns the guard."""
    guard = Guard(VigilClient(url, token, timeout=GUARD_TIMEOUT), cache_secs)
    amqp = app.amqp
    send = amqp.send_task_message

    def guarded(producer, name, message, exchange=None, routing_key=None, queue=None, **kwargs):
        qname = getattr(queue, "name", queue) or routing_key or app.conf.task_default_queue
        guard.check(qname)
        return send(producer, name, message, exchange=exchange, routing_key=routing_key, queue=queue, **kwargs)

    amqp.send_task_message = guarded
    return guard
