#!/usr/bin/env python3
"""State at scale: fills N tasks through the ingest API (several queues, states, owners,
workers, task names, some batch jobs), then times every documented read: p50/p99 over
repeated requests, the SSE `initial_data` delay, and the host's memory.
Standard library only, so it runs anywhere Python 3 does."""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse

QUEUES = ["default", "premium", "normal", "large"]
OWNERS = ["alice", "bob", "carol", "dave"]
WORKERS = [f"celery@w{i}" for i in range(8)]
NAMES = [f"app.tasks.t{i}" for i in range(10)]
# Final states and their shares: most tasks finished, some live, a few failed or retrying.
OUTCOMES = [("received", 10), ("started", 5), ("progress", 3), ("retry", 2),
            ("succeeded", 72), ("failed", 8)]
EVENTS_PER_REQUEST = 1000  # the ingest API's largest batch
PRODUCERS = 4              # concurrent producer connections during the fill
SAMPLES = 100              # requests per timed read


class Client:
    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.host, self.port, self.token = u.hostname, u.port, token
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")


def task_events(i, now, n):
    """The events of task i, timestamps spread over the hour before `now`."""
    rnd = random.Random(i)
    ts = now - 3600.0 + 3600.0 * i / n
    uuid = f"bench-{i:07d}"
    outcome = rnd.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    base = {"uuid": uuid}
    evs = [dict(base, type="task-received", name=NAMES[i % len(NAMES)], args=[i],
                routing_key=QUEUES[rnd.randrange(len(QUEUES))], owner=OWNERS[i % len(OWNERS)],
                timestamp=ts)]
    if i % 100 == 0:
        evs[0]["totalBatches"] = 10
    if outcome == "received":
        return evs
    evs.append(dict(base, type="task-started", hostname=WORKERS[i % len(WORKERS)], timestamp=ts + 0.5))
    if outcome == "progress":
        evs.append(dict(base, type="task-progress", progress=40, step="load", timestamp=ts + 1.0))
    elif outcome == "retry":
        evs.append(dict(base, type="task-retried", exception="Timeout", timestamp=ts + 1.0))
    elif outcome == "succeeded":
        evs.append(dict(base, type="task-succeeded", result=i, runtime=rnd.uniform(0.1, 30), timestamp=ts + 2.0))
    elif outcome == "failed":
        evs.append(dict(base, type="task-failed", exception="ValueError: bad input", timestamp=ts + 2.0))
    return evs


def fill(base, producer, n):
    """Ingests n tasks' events in batches of up to 1000 from several producers."""
    now = time.time()
    chunks = []
    batch = []
    for i in range(n):
        batch.extend(task_events(i, now, n))
        if len(batch) >= EVENTS_PER_REQUEST - 4:
            chunks.append(batch)
            batch = []
    if batch:
        chunks.append(batch)
    errors = []
    lock = threading.Lock()
    it = iter(chunks)

    def produce():
        c = Client(base, producer)
        while True:
            with lock:
                b = next(it, None)
            if b is None:
                return
            status, body = c.request("POST", "/api/v1/events", json.dumps(b))
            if status != 202:
                with lock:
                    errors.append((status, body[:200]))

    start = time.time()
    threads = [threading.Thread(target=produce) for _ in range(PRODUCERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = sum(len(c) for c in chunks)
    return time.time() - start, events, errors


def timed(client, path, samples):
    """p50 and p99 in ms of `samples` GETs of `path`; fails on any non-200."""
    took = []
    for _ in range(samples):
        t0 = time.perf_counter()
        status, body = client.request("GET", path)
        took.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body[:300]}")
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))], len(body)


def sse_initial_data(base, token):
    """ms from connecting to /events until `initial_data` has fully arrived."""
    u = urllib.parse.urlparse(base)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", "/events", headers={"Authorization": f"Bearer {token}"})
    r = conn.getresponse()
    seen = False
    while True:
        line = r.fp.readline()
        if not line:
            raise SystemExit("SSE stream ended before initial_data")
        if line.startswith(b"event: initial_data"):
            seen = True
        elif seen and line.startswith(b"data:"):
            took = (time.perf_counter() - t0) * 1000
            conn.close()
            return took


def rss_mib(pid):
    """(current, peak) resident memory of the host, MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    kib = lambda k: int(fields.get(k, "0 kB").split()[0]) / 1024
    return kib("VmRSS"), kib("VmHWM")


def reads(admin, viewer):
    """The reads a dashboard and the seeds' clients make: (label, path, token)."""
    return [
        ("tasks, newest 50", "/api/v1/tasks?limit=50", admin),
        ("tasks, state+queue", "/api/v1/tasks?state=RECEIVED&queue=premium&limit=50", admin),
        ("tasks, state=FAILURE", "/api/v1/tasks?state=FAILURE&limit=50", admin),
        ("tasks, worker", "/api/v1/tasks?worker=celery@w3&limit=50", admin),
        ("tasks, name", "/api/v1/tasks?name=app.tasks.t4&limit=50", admin),
        ("tasks, slowest (sort_by=-runtime)", "/api/v1/tasks?sort_by=-runtime&limit=50", admin),
        ("tasks, received in a 5-min window", "RECEIVED_WINDOW", admin),
        ("tasks, offset 5000", "/api/v1/tasks?limit=50&offset=5000", admin),
        ("tasks, next page by cursor", "NEXT_PAGE", admin),
        ("tasks, viewer's own", "/api/v1/tasks?limit=50", viewer),
        ("tasks, search (bounded)", "/api/v1/tasks?search=bench-0000042&limit=50", admin),
        ("jobs", "/api/v1/jobs?limit=50", admin),
        ("one task", "/api/v1/tasks/bench-0000007", admin),
        ("queues", "/api/v1/queues", admin),
        ("workers", "/api/v1/workers", admin),
        ("seed 000 admin tasks", "/api/admin/celery/tasks?limit=20", admin),
        ("seed 000 queue stats", "/api/admin/celery/queues/stats", admin),
        ("dashboard snapshot", "/api/v1/dashboard", admin),
        ("dashboard snapshot, viewer", "/api/v1/dashboard", viewer),
    ]


def run(base, admin, viewer, producer, pid, n, reads_only, fill_only):
    if fill_only:
        secs, events, errors = fill(base, producer, n)
        if errors:
            raise SystemExit(f"{len(errors)} ingest requests failed, first: {errors[0]}")
        print(f"filled {n} tasks ({events} events) in {secs:.1f} s")
        return
    if reads_only:
        print(f"\nN = {n} (already stored); host RSS {rss_mib(pid)[0]:.0f} MiB\n")
    else:
        secs, events, errors = fill(base, producer, n)
        if errors:
            raise SystemExit(f"{len(errors)} ingest requests failed, first: {errors[0]}")
        print(f"\nN = {n}: filled {events} events in {secs:.1f} s ({events / secs:.0f} events/s, "
              f"{n / secs:.0f} tasks/s); host RSS {rss_mib(pid)[0]:.0f} MiB\n")
    print("| read | p50 ms | p99 ms | response KiB |")
    print("| --- | ---: | ---: | ---: |")
    client = Client(base, admin)
    as_viewer = Client(base, viewer)
    status, first = client.request("GET", "/api/v1/tasks?limit=50")
    cursor = json.loads(first)["next_cursor"]
    now = time.time()
    window = f"/api/v1/tasks?received_after={now - 1800}&received_before={now - 1500}&sort_by=received_at&limit=50"
    for label, path, token in reads(admin, viewer):
        path = {"NEXT_PAGE": f"/api/v1/tasks?limit=50&cursor={cursor}", "RECEIVED_WINDOW": window}.get(path, path)
        p50, p99, size = timed(as_viewer if token == viewer else client, path, SAMPLES)
        print(f"| {label} | {p50:.1f} | {p99:.1f} | {size / 1024:.1f} |")
    sse = sorted(sse_initial_data(base, admin) for _ in range(20))
    print(f"| SSE `initial_data` after connect | {statistics.median(sse):.1f} | {sse[-1]:.1f} | |")
    cur, peak = rss_mib(pid)
    print(f"\nhost RSS after the reads: {cur:.0f} MiB (peak {peak:.0f} MiB)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--admin")
    p.add_argument("--viewer")
    p.add_argument("--producer", required=True)
    p.add_argument("--pid", type=int)
    p.add_argument("--tasks", type=int, required=True)
    p.add_argument("--reads-only", action="store_true",
                   help="time the reads of a host already filled with --tasks tasks")
    p.add_argument("--fill-only", action="store_true",
                   help="fill --tasks tasks and stop (scripts/bench ingest's BENCH_INGEST_FILL)")
    a = p.parse_args()
    if not a.fill_only and None in (a.admin, a.viewer, a.pid):
        p.error("--admin, --viewer and --pid are needed unless --fill-only")
    run(a.base, a.admin, a.viewer, a.producer, a.pid, a.tasks, a.reads_only, a.fill_only)


if __name__ == "__main__":
    main()
