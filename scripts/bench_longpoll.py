#!/usr/bin/env python3
"""Long-poll capacity: N clients wait at once — half on the event feed
(GET /api/v1/events?since=…&timeout=…&topics=celery:tasks), half on seed 000's job wait
(GET /api/admin/celery/jobs/{id}/wait, spread over --jobs jobs) — then one batch
finishing every job is ingested. Reports how many were held, how many refused (503),
the host's memory per held long-poll, ingest latency while they are held, and how long
after the finishing batch's acknowledgement each answer came (p50/p99).
Standard library only (asyncio, one socket per client), so it runs anywhere Python 3
does and drives 10 000 clients from one process."""
import argparse
import asyncio
import json
import os
import time
import urllib.parse

# Clients connected per second: the host asks the component once per new long-poll, so
# a burst of 10 000 at once would measure the connect storm, not the wait.
CONNECT_RATE = 1000
# Single-event ingests timed while the long-polls are held ("ingest unaffected").
INGEST_PROBES = 100
# How long a run waits for the long-polls to be held and for their answers, seconds.
SETTLE_SECS = 60


class Host:
    def __init__(self, base, admin, producer):
        u = urllib.parse.urlparse(base)
        self.addr, self.port = u.hostname, u.port
        self.admin, self.producer = admin, producer

    async def request(self, method, path, token, body=b""):
        """One request on its own connection; (status, body bytes, time answered)."""
        r, w = await asyncio.open_connection(self.addr, self.port)
        head = (f"{method} {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n"
                f"authorization: Bearer {token}\r\ncontent-length: {len(body)}\r\n\r\n")
        w.write(head.encode() + body)
        await w.drain()
        data = await r.read()
        answered = time.monotonic()
        w.close()
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, data.partition(b"\r\n\r\n")[2], answered

    async def json(self, method, path, token, body=b""):
        status, data, _ = await self.request(method, path, token, body)
        if b"\r\n" in data and not data.lstrip().startswith((b"{", b"[")):
            data = dechunk(data)
        return status, json.loads(data or b"null")

    async def ingest(self, events):
        started = time.monotonic()
        status, _, acked = await self.request("POST", "/api/v1/events", self.producer,
                                              json.dumps(events).encode())
        assert status == 202, status
        return acked, acked - started

    async def parked(self):
        status, data, _ = await self.request("GET", "/metrics", self.admin)
        for line in data.decode().splitlines():
            if line.startswith("vigil_long_polls_parked "):
                return int(line.split()[1])
        return None  # a host that does not park


def dechunk(data):
    out, rest = b"", data
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2:]
    return out


def cpu_ms(pid):
    """The host's CPU time so far (user + system), milliseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 // os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def run(host, clients, jobs, timeout, pid):
    ids = []
    for _ in range(jobs):
        status, job = await host.json("POST", "/api/admin/celery/jobs/bench.job", host.admin, b"{}")
        ids.append(job["job_id"])
    since = (await host.json("GET", "/api/v1/events?timeout=0", host.admin))[1]["seq"]
    rss_before = rss_kib(pid)
    feed = f"/api/v1/events?since={since}&timeout={timeout}&topics=celery:tasks"
    paths = [feed if i % 2 == 0 else f"/api/admin/celery/jobs/{ids[i // 2 % jobs]}/wait?timeout={timeout}"
             for i in range(clients)]
    tasks = []
    for i, path in enumerate(paths):
        tasks.append(asyncio.create_task(host.request("GET", path, host.admin)))
        if i % (CONNECT_RATE // 10) == 0:
            await asyncio.sleep(0.1)
    held = await settle(host, tasks, clients)
    rss_held = rss_kib(pid)
    lags = []
    for i in range(INGEST_PROBES):
        _, lag = await host.ingest({"type": "worker-heartbeat", "hostname": f"bench-{i % 4}"})
        lags.append(lag)
    cpu = cpu_ms(pid)
    acked, _ = await host.ingest([{"type": "task-succeeded", "uuid": i, "result": "1"} for i in ids])
    done, _ = await asyncio.wait(tasks, timeout=SETTLE_SECS)
    cpu = cpu_ms(pid) - cpu
    results = [t.result() for t in done if not t.exception()]
    ok = sorted(at - acked for s, body, at in results
                if s == 200 and (b'"events":[{' in body or b'"completed"' in body))
    refused = sum(1 for s, _, _ in results if s == 503)
    if await host.parked() is None:
        held = clients - refused  # a host that does not park: no gauge to read
    for t in tasks:
        t.cancel()
    per = (rss_held - rss_before) / max(held, 1)
    return held, refused, len(ok), per, pct(sorted(lags), 0.99), pct(ok, 0.5), pct(ok, 0.99), cpu


async def run_spread(host, clients, finished, timeout, pid):
    """N job waits on N distinct tasks; then `finished` of them finish one at a time,
    each measured from its own acknowledgement."""
    tag = f"spread-{clients}-{time.time()}"
    ids = [f"{tag}-{i}" for i in range(clients)]
    for i in range(0, clients, 1000):
        await host.ingest([{"type": "task-received", "uuid": u} for u in ids[i:i + 1000]])
    rss_before = rss_kib(pid)
    tasks = []
    for i, u in enumerate(ids):
        tasks.append(asyncio.create_task(
            host.request("GET", f"/api/admin/celery/jobs/{u}/wait?timeout={timeout}", host.admin)))
        if i % (CONNECT_RATE // 10) == 0:
            await asyncio.sleep(0.1)
    held = await settle(host, tasks, clients)
    rss_held = rss_kib(pid)
    refused = sum(1 for t in tasks if t.done() and t.result()[0] == 503)
    lags, cpu = [], cpu_ms(pid)
    for i in range(0, clients, max(1, clients // finished))[:finished]:
        acked, _ = await host.ingest({"type": "task-succeeded", "uuid": ids[i], "result": "1"})
        status, body, answered = await asyncio.wait_for(tasks[i], SETTLE_SECS)
        if status == 200 and b'"completed"' in body:
            lags.append(answered - acked)
    cpu = cpu_ms(pid) - cpu
    for t in tasks:
        t.cancel()
    lags.sort()
    per = (rss_held - rss_before) / max(held, 1)
    return held, refused, len(lags), per, "-", pct(lags, 0.5), pct(lags, 0.99), cpu


async def settle(host, tasks, clients):
    """Waits until every long-poll is parked (or answered: refused), then the count held."""
    deadline = time.monotonic() + SETTLE_SECS
    while True:
        answered = sum(1 for t in tasks if t.done())
        parked = await host.parked()
        held = parked if parked is not None else clients - answered
        if held + answered >= clients or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.5)


def pct(xs, p):
    return f"{xs[min(len(xs) - 1, int(len(xs) * p))] * 1000:.0f}" if xs else "-"


async def main(a):
    host = Host(a.base, a.admin, a.producer)
    if not a.only_one_at_a_time:
        await all_at_once(host, a)
    if a.finish_one_at_a_time:
        await one_at_a_time(host, a)


async def all_at_once(host, a):
    print("| clients | held | refused (503) | answered | RSS KiB per long-poll | ingest p99 ms while held | p50 ms from ack | p99 ms from ack | host CPU ms to answer |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in a.clients:
        held, refused, ok, per, ingest99, p50, p99, cpu = await run(host, n, a.jobs, a.timeout, a.pid)
        print(f"| {n} | {held} | {refused} | {ok} | {per:.1f} | {ingest99} | {p50} | {p99} | {cpu} |", flush=True)


async def one_at_a_time(host, a):
    print(f"\nOne at a time: N job waits on N distinct tasks, {a.finish_one_at_a_time} of them finished"
          " one after the other (each measured from its own acknowledgement):\n")
    print("| clients | held | refused (503) | answered | - | - | p50 ms from ack | p99 ms from ack | host CPU ms (all) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in a.clients:
        row = await run_spread(host, n, a.finish_one_at_a_time, a.timeout, a.pid)
        held, refused, ok, per, _, p50, p99, cpu = row
        # Memory is not shown: the first table's connections left it allocated.
        print(f"| {n} | {held} | {refused} | {ok} | - | - | {p50} | {p99} | {cpu} |", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--producer", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--jobs", type=int, default=10, help="distinct jobs the job waits spread over")
    ap.add_argument("--timeout", type=int, default=120, help="each long-poll's timeout, seconds")
    ap.add_argument("--finish-one-at-a-time", type=int, default=0, metavar="K",
                    help="also: N waits on N distinct tasks, K of them finished one at a time")
    ap.add_argument("--only-one-at-a-time", action="store_true",
                    help="only the one-at-a-time table (scripts/bench longpoll times all at once"
                         " with vigil-loadgen)")
    asyncio.run(main(ap.parse_args()))
