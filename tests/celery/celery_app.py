"""The Celery application the real worker runs in tests/celery: tasks that succeed,
fail, retry, report progress both ways, sleep (to be revoked), send children and custom
events. The broker and result backend come from VIGIL_TEST_REDIS."""

import os
import time

from celery import Celery

import vigil_celery

REDIS = os.environ.get("VIGIL_TEST_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("vigiltest", broker=REDIS, backend=REDIS)
app.conf.update(
    task_send_sent_event=True,
    task_track_started=True,
    worker_send_task_events=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@app.task
def add(x, y):
    return x + y


@app.task
def fail(msg):
    raise ValueError(msg)


@app.task(bind=True, max_retries=3)
def flaky(self, succeed_on):
    if self.request.retries < succeed_on:
        raise self.retry(exc=RuntimeError(f"attempt {self.request.retries}"), countdown=0.3)
    return f"ok after {self.request.retries}"


@app.task(bind=True)
def crunch(self, steps, pause):
    """Reports progress the usual Celery way (update_state) and with the bridge's helper."""
    for i in range(steps):
        self.update_state(state="PROGRESS", meta={"current": i + 1, "total": steps})
        vigil_celery.report_progress(self, i + 1, steps, step=f"step {i + 1}")
        time.sleep(pause)
    return steps


@app.task
def sleepy(secs):
    time.sleep(secs)
    return "woke up"


@app.task(bind=True)
def parent(self):
    child = add.delay(20, 22)
    self.send_event("task-checkpoint", stage="child sent", child=child.id)
    return child.id
