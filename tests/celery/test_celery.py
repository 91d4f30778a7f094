"""Issue 10, deliverable 6, against the real thing: a Celery worker with events on, the
bridge and Vigil. Every task Vigil shows is compared field by field with Celery's own
`State` fed the same stream; commands from Vigil are observed on the worker; the bridge
survives a Vigil restart and a broker restart."""

import signal
import socket
import subprocess
import time

import pytest
from celery.result import AsyncResult

import vigil_celery
from conftest import bridge_script, wait_until

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
#: Seconds a task's events may take to reach Vigil through the broker and the bridge.
SETTLE = 30.0
#: Every task the suite sent, compared with Celery's State at the end of the first part.
SENT = []


def sent(result):
    SENT.append(result.id)
    return result


def vigil_task(vigil, task_id):
    status, body = vigil.call("GET", f"/api/v1/tasks/{task_id}")
    return body if status == 200 else None


def wait_state(vigil, task_id, states, timeout=SETTLE):
    states = {states} if isinstance(states, str) else set(states)
    return wait_until(lambda: (t := vigil_task(vigil, task_id)) and t["state"] in states and t,
                      timeout, f"task {task_id} in {states} on Vigil")


def test_a_bad_url_or_token_stops_the_bridge_with_a_clear_message(vigil, redis):
    def run(url, token):
        argv = [bridge_script(), "--broker", redis.url, "--url", url, "--token", token]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    for url, token, says in [
        (vigil.url, "not-a-token", "Vigil refused the token"),
        (vigil.url, vigil.token("viewer"), "use a producer token"),
        ("http://127.0.0.1:9", vigil.producer, "cannot reach Vigil at http://127.0.0.1:9"),
        ("127.0.0.1:3000", vigil.producer, "--url must be an http(s) URL"),
    ]:
        r = run(url, token)
        assert (r.returncode, says in r.stderr) == (2, True), r.stderr


def test_tasks_of_every_kind_run(vigil, celery_app, celery_state, bridge):
    import celery_app as tasks
    for i in range(4):
        sent(tasks.add.apply_async((i, i), queue="math"))
    sent(tasks.add.delay(1, 2))
    sent(tasks.fail.delay("boom"))
    sent(tasks.flaky.delay(2))
    sent(tasks.crunch.delay(6, 0.5))
    sent(tasks.add.apply_async((5, 5), countdown=2))
    sent(tasks.parent.delay())
    for task_id in list(SENT):
        wait_state(vigil, task_id, FINAL)
    child = AsyncResult(SENT[-1], app=celery_app).get(timeout=10)
    SENT.append(child)
    wait_state(vigil, child, "SUCCESS")


def test_revoked_while_queued_and_while_running(vigil, celery_app, celery_state):
    import celery_app as tasks
    blockers = [sent(tasks.sleepy.delay(2)) for _ in range(6)]
    queued = sent(tasks.add.delay(7, 7))
    wait_state(vigil, queued.id, "PENDING")
    status, body = vigil.call("POST", f"/api/v1/tasks/{queued.id}/revoke")
    assert status == 200, body
    for b in blockers:
        wait_state(vigil, b.id, "SUCCESS")
    running = sent(tasks.sleepy.delay(30))
    wait_state(vigil, running.id, "STARTED")
    started = time.monotonic()
    status, body = vigil.call("POST", f"/api/v1/tasks/{running.id}/revoke?terminate=true&signal=SIGKILL")
    assert status == 200, body
    wait_until(lambda: AsyncResult(running.id, app=celery_app).state == "REVOKED", 15,
               "the worker to terminate the task")
    assert time.monotonic() - started < 15, "the task was stopped, not left to sleep 30 s"
    t = wait_until(lambda: (t := vigil_task(vigil, running.id)) and "signum" in t.get("extra", {}) and t,
                   SETTLE, "the worker's task-revoked (terminated, with its signal) on Vigil")
    assert (t["state"], t["extra"]["terminated"], str(t["extra"]["signum"])) == ("REVOKED", True, "9"), t
    q = wait_until(lambda: (t := vigil_task(vigil, queued.id)) and t.get("worker") and t, SETTLE,
                   "the worker's task-revoked of the queued task")
    assert (q["state"], q["name"], q["queue"]) == ("REVOKED", "celery_app.add", "celery"), q
    assert "received_at" not in q, "revoked before a worker received it"


def test_every_task_matches_celerys_own_state(vigil, celery_state):
    def celery_view(t):
        return {"state": t.state, "name": t.name, "queue": getattr(t, "queue", None),
                "worker": t.worker.hostname if t.worker else None, "runtime": t.runtime,
                "retries": t.retries or 0, "result": t.result, "exception": t.exception}

    def vigil_view(t):
        keys = ("state", "name", "queue", "worker", "runtime", "retries", "result", "exception")
        return {k: t.get(k) for k in keys}

    def same(task_id):
        ours, theirs = vigil_task(vigil, task_id), celery_state.tasks.get(task_id)
        return ours and theirs and vigil_view(ours) == celery_view(theirs)

    for task_id in SENT:
        try:
            wait_until(lambda: same(task_id), 10, f"task {task_id} to match")
        except AssertionError:
            theirs = celery_state.tasks.get(task_id)
            pytest.fail(f"{task_id}: Vigil {vigil_view(vigil_task(vigil, task_id) or {})} "
                        f"!= Celery {theirs and celery_view(theirs)}")
    assert len(SENT) == 19, "every task of the two tests above was compared"


def test_detail_attempts_history_children_and_progress(vigil):
    flaky, crunch, parent, child = (SENT[6], SENT[7], SENT[9], SENT[10])
    t = vigil.get(f"/api/v1/tasks/{flaky}")
    assert [a["retries"] for a in t["attempts"]] == [0, 1, 2]
    assert [a["state"] for a in t["attempts"]] == ["RETRY", "RETRY", "SUCCESS"]
    assert t["received_at"] == t["attempts"][-1]["received_at"], "the task shows the latest attempt"
    assert t["started_at"] > t["attempts"][0]["started_at"]
    history = vigil.get(f"/api/v1/tasks/{crunch}/events")["events"]
    progress = [e for e in history if e["type"] == "task-progress"]
    assert any("hostname" in e["fields"] for e in progress), "the one-line helper's events"
    assert any("hostname" not in e["fields"] for e in progress), "update_state read from the backend"
    assert max(e["fields"]["progress"] for e in progress) > 0
    times = [e["timestamp"] for e in history]
    assert times == sorted(times), "events in time order"
    assert [e["type"] for e in history][:2] == ["task-sent", "task-received"]
    p = vigil.get(f"/api/v1/tasks/{parent}")
    assert child in p["children"]
    assert vigil.get(f"/api/v1/tasks/{child}")["parent_id"] == parent
    assert any(e["type"] == "task-checkpoint" for e in vigil.get(f"/api/v1/tasks/{parent}/events")["events"])


def test_worker_details_and_derived_counts(vigil):
    w = vigil.get("/api/v1/workers/w1@vigiltest")
    assert w["sw_ident"] == "py-celery" and w["sw_ver"].startswith("5.") and w["pid"] > 0, w
    assert w["failed"] >= 1, "derived from task-failed: Celery's heartbeats carry no failed count"
    assert w["task_counts"]["task-succeeded"] >= 12
    assert len(w["heartbeats"]) >= 1
    s = wait_until(lambda: vigil.get("/api/v1/workers/w1@vigiltest").get("stats"), 15, "inspect stats")
    assert s["pool"]["max-concurrency"] == 2


def test_job_submitted_through_vigil_runs_on_the_worker(vigil, celery_app):
    status, job = vigil.call("POST", "/api/admin/celery/jobs/celery_app.add", {"args": [2, 3], "queue": "math"})
    assert status == 202, job
    status, done = vigil.call("GET", f"/api/admin/celery/jobs/{job['job_id']}/wait?timeout=30")
    assert (status, done["status"], done["result"]) == (200, "completed", "5"), done
    assert AsyncResult(job["job_id"], app=celery_app).get(timeout=10) == 5, "the real worker ran it"


def test_broker_depth_appears_in_queues(vigil, celery_app):
    import celery_app as tasks
    for i in range(3):
        tasks.add.apply_async((i, 0), queue="idle")

    def idle_depth():
        queues = {q["name"]: q for q in vigil.get("/api/v1/queues")["queues"]}
        return queues.get("idle", {}).get("depth") == 3

    wait_until(idle_depth, 15, "the idle queue's broker depth")


def test_prometheus_shows_the_domain_as_flower_exports_it(vigil):
    import urllib.request

    def metrics():
        with urllib.request.urlopen(vigil.url + "/metrics", timeout=10) as r:
            return r.read().decode()

    text = wait_until(lambda: (m := metrics()) and 'vigil_queue_depth{queue="idle"} 3' in m and m, 15,
                      "the queue depth in /metrics")
    w = 'worker="w1@vigiltest"'
    for want in (f'flower_events_total{{task="celery_app.add",type="task-succeeded",{w}}}',
                 f'flower_task_runtime_seconds_count{{task="celery_app.add",{w}}}',
                 f'flower_task_prefetch_time_seconds_bucket{{task="celery_app.sleepy",{w},le="+Inf"}}',
                 f'flower_worker_online{{{w}}} 1',
                 f'flower_worker_number_of_currently_executing_tasks{{{w}}}'):
        assert want in text, f"{want} missing from /metrics"
    line = next(x for x in text.splitlines() if x.startswith('flower_events_total{task="celery_app.fail",type="task-failed"'))
    assert line.endswith(" 1"), line


def test_worker_control_from_vigil(vigil, celery_app, worker):
    def processes():
        stats = celery_app.control.inspect(timeout=1).stats() or {}
        return len(stats["w1@vigiltest"]["pool"]["processes"])

    before = processes()
    path = "/api/v1/workers/w1@vigiltest/control"
    status, body = vigil.call("POST", path, {"command": "pool_grow", "n": 1})
    assert status == 202, body
    wait_until(lambda: processes() == before + 1, 15, "the pool to grow")
    status, body = vigil.call("POST", path, {"command": "rate_limit", "task": "celery_app.add", "rate": "100/m"})
    assert status == 202, body
    wait_until(lambda: "New rate limit for tasks of type celery_app.add: 100/m" in worker.tail(200), 15,
               "the worker to apply the rate limit")
    status, body = vigil.call("POST", path, {"command": "pool_shrink", "n": 1})
    assert status == 202, body
    wait_until(lambda: processes() == before, 15, "the pool to shrink")


def test_guard_fails_apply_async_fast_while_the_breaker_is_open(vigil, celery_app):
    import celery_app as tasks
    guard = vigil_celery.install_guard(celery_app, url=vigil.url, token=vigil.producer, cache_secs=0.2)
    status, _ = vigil.call("POST", "/api/v1/queue/open-circuit-breaker", {"queue": "guarded", "reason": "maintenance"})
    assert status == 200
    with pytest.raises(vigil_celery.BreakerOpen, match="maintenance"):
        tasks.add.apply_async((1, 1), queue="guarded")
    sent(tasks.add.apply_async((1, 1), queue="math"))
    vigil.call("POST", "/api/v1/queue/close-circuit-breaker", {"queue": "guarded"})
    time.sleep(0.3)
    tasks.add.apply_async((1, 1), queue="guarded")
    assert guard.cache_secs == 0.2


def test_the_bridge_survives_a_vigil_restart(vigil, celery_app, bridge):
    import celery_app as tasks
    vigil.proc.stop(signal.SIGKILL)
    during = [tasks.add.delay(i, 100) for i in range(5)]
    for r in during:
        assert r.get(timeout=20) is not None
    wait_until(lambda: "unreachable" in bridge.tail(200), 15, "the bridge to notice Vigil is away")
    vigil.start()
    for r in during:
        wait_state(vigil, r.id, "SUCCESS")


def test_the_bridge_survives_a_broker_restart(vigil, redis, celery_app, bridge, worker):
    import celery_app as tasks
    before = [t for t in SENT if vigil_task(vigil, t)]
    redis.stop(signal.SIGKILL)
    time.sleep(1)
    redis.start()
    host, port = "127.0.0.1", int(redis.url.rsplit(":", 1)[1].split("/")[0])
    wait_until(lambda: socket.create_connection((host, port), 1).close() or True, 10, "redis again")
    wait_until(lambda: celery_app.control.ping(timeout=0.5), 60, "the worker to reconnect")
    wait_until(lambda: "reading events" in bridge.tail(30).split("event stream lost")[-1], 60,
               "the bridge to read events again")
    after = [tasks.add.delay(i, 1000) for i in range(3)]
    for r in after:
        wait_state(vigil, r.id, "SUCCESS", timeout=60)
    for t in before:
        assert vigil_task(vigil, t)["state"] in FINAL | {"PENDING"}
