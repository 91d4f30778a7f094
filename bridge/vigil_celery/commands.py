"""Carrying out Vigil's commands on the real cluster with Celery's control API.

The bridge long-polls Vigil's command feed (`GET /api/v1/events?topics=commands`) and:
- `revoke`: `app.control.revoke(task_id, terminate=…, signal=…)`;
- `submit`: `app.send_task(name, args, kwargs, task_id=<Vigil's job id>, queue=…)`, so
  Vigil's `/jobs/{id}/wait` returns the real result;
- `control`: `pool_grow`, `pool_shrink`, `autoscale`, `add_consumer`, `cancel_consumer`,
  `rate_limit`, `time_limit`, `shutdown` on the named worker.
Run one bridge with commands per cluster (`--no-commands` on any other), or each command
is carried out once per bridge.
"""

import json
import logging
import os
import random

log = logging.getLogger("vigil_celery")

#: Seconds one long-poll of the command feed waits (Vigil allows up to 300).
FEED_WAIT = 25
#: Seconds the bridge waits for workers to answer a control command (logged).
REPLY_TIMEOUT = 2.0
#: Backoff while Vigil is away: first wait, cap, seconds.
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0


class Commands:
    """The command loop; `cursor` is the last feed sequence number handled."""

    def __init__(self, app, client, state_file=None):
        self.app = app
        self.client = client
        self.state_file = state_file
        self.cursor = self._load()
        self.done = 0

    def _load(self):
        if not self.state_file or not os.path.exists(self.state_file):
            return None
        with open(self.state_file) as f:
            return json.load(f).get("commands_seq")

    def _save(self):
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"commands_seq": self.cursor}, f)
        os.replace(tmp, self.state_file)

    def run(self, stop):
        backoff = BACKOFF_START
        while not stop.is_set():
            try:
                self.client.renew_if_due()
                status, body = self.client.commands(self.cursor, FEED_WAIT)
            except OSError as e:
                status, body = None, str(e)
            if status != 200:
                log.warning("command feed unavailable (%s: %s); retrying", status, body)
                stop.wait(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            if body.get("reset"):
                log.warning("command feed reset: commands before seq %s are gone", body.get("seq"))
            for event in body.get("events", []):
                self.handle(event.get("data") or {})
            self.cursor = body.get("seq", self.cursor)
            self._save()

    def handle(self, cmd):
        """Carries out one command; a failure is logged, never fatal."""
        try:
            kind = cmd.get("command")
            if kind == "revoke":
                self.revoke(cmd)
            elif kind == "submit":
                self.submit(cmd)
            elif kind == "control":
                self.control(cmd)
            else:
                log.warning("unknown command %r ignored", kind)
                return
            self.done += 1
        except Exception:  # noqa: BLE001 — one bad command must not stop the loop
            log.exception("command %s failed", cmd)

    def revoke(self, cmd):
        terminate = bool(cmd.get("terminate"))
        signal = cmd.get("signal") or "SIGTERM"
        self.app.control.revoke(cmd["task_id"], terminate=terminate, signal=signal)
        log.info("revoked %s (terminate=%s, signal=%s) for %s", cmd["task_id"], terminate, signal, cmd.get("by"))

    def submit(self, cmd):
        args, kwargs = cmd.get("args"), cmd.get("kwargs")
        if args is not None and not isinstance(args, list):
            args = [args]
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError(f"kwargs of job {cmd.get('job_id')} is not an object: {kwargs!r}")
        self.app.send_task(cmd["name"], args=args, kwargs=kwargs, task_id=cmd["job_id"], queue=cmd.get("queue"))
        log.info("submitted %s as %s to %s for %s", cmd["name"], cmd["job_id"], cmd.get("queue"), cmd.get("by"))

    def control(self, cmd):
        action, a = cmd["action"], cmd.get("arguments") or {}
        c = self.app.control
        opts = {"destination": cmd.get("destination"), "reply": True, "timeout": REPLY_TIMEOUT}
        calls = {
            "pool_grow": lambda: c.pool_grow(a.get("n", 1), **opts),
            "pool_shrink": lambda: c.pool_shrink(a.get("n", 1), **opts),
            "autoscale": lambda: c.autoscale(a["max"], a.get("min", 0), **opts),
            "add_consumer": lambda: c.add_consumer(a["queue"], **opts),
            "cancel_consumer": lambda: c.cancel_consumer(a["queue"], **opts),
            "rate_limit": lambda: c.rate_limit(a["task"], a.get("rate"), **opts),
            "time_limit": lambda: c.time_limit(a["task"], soft=a.get("soft"), hard=a.get("hard"), **opts),
            "shutdown": lambda: c.shutdown(**opts),
        }
        if action not in calls:
            raise ValueError(f"unknown control action {action!r}")
        replies = calls[action]()
        log.info("%s %s on %s for %s: %s", action, a, cmd.get("destination"), cmd.get("by"), replies)
