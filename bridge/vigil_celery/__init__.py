"""Attach a Celery deployment to Vigil.

- `vigil-celery` (see `cli`): the bridge process.
- `install_guard(app, url, token)`: `apply_async` fails fast while a queue's breaker is open.
- `report_progress(task, current, total, step)`: a task reports progress in one line.
"""

from .guard import BreakerOpen, install_guard

__all__ = ["BreakerOpen", "install_guard", "report_progress"]
__version__ = "0.1.0"


def report_progress(task, current, total=100, step=None, **fields):
    """Sends a `task-progress` event from a bound task (`@app.task(bind=True)`):
    `current` of `total` done, with an optional step text. Needs events enabled (`-E`)."""
    pct = current if not total else 100.0 * current / total
    fields["progress"] = round(max(0.0, min(100.0, float(pct))), 2)
    if step is not None:
        fields["step"] = str(step)
    task.send_event("task-progress", **fields)
