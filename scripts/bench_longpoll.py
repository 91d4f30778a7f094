#!/usr/bin/env python3
"""Long-poll capacity: N clients wait on GET /api/v1/events?timeout=…, one event is
ingested, and we count who got it, how late, and what the host's memory peaked at.
Standard library only (threads), so it runs anywhere Python 3 does."""
import argparse
import json
import threading
import time
import urllib.error
import urllib.request


def get(url, token, timeout):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    return urllib.request.urlopen(req, timeout=timeout)


def run(base, admin, producer, clients, pid):
    results = []
    lock = threading.Lock()

    def wait():
        try:
            r = get(f"{base}/api/v1/events?timeout=60&topics=celery:tasks", admin, 90)
            body = json.load(r)
            outcome = "ok" if body.get("events") else "empty"
        except urllib.error.HTTPError as e:
            outcome = str(e.code)
        except Exception as e:  # connection errors count as failures, not crashes
            outcome = type(e).__name__
        with lock:
            results.append((outcome, time.time()))

    threads = [threading.Thread(target=wait, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(max(2.0, clients / 500))  # let every long-poll reach the server
    body = json.dumps({"type": "task-received", "uuid": f"bench-{clients}-{time.time()}"}).encode()
    req = urllib.request.Request(f"{base}/api/v1/events", data=body,
                                 headers={"Authorization": f"Bearer {producer}"})
    t0 = time.time()
    urllib.request.urlopen(req, timeout=30)
    for t in threads:
        t.join(120)
    ok = sorted(t - t0 for o, t in results if o == "ok")
    refused = sum(1 for o, _ in results if o == "503")
    other = len(results) - len(ok) - refused
    pct = lambda p: f"{ok[min(len(ok) - 1, int(len(ok) * p))] * 1000:.0f}" if ok else "-"
    return len(ok), refused, other, pct(0.5), pct(0.99), peak_rss_mib(pid)


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--producer", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--clients", type=int, nargs="+", default=[100, 500, 1000])
    a = ap.parse_args()
    print("| long-poll clients | got the event | refused (503) | failed | p50 ms | p99 ms | host peak RSS MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in a.clients:
        ok, refused, other, p50, p99, rss = run(a.base, a.admin, a.producer, n, a.pid)
        print(f"| {n} | {ok} | {refused} | {other} | {p50} | {p99} | {rss} |", flush=True)
