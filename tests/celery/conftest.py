"""The real parts, started once for the suite: redis-server on a free port (broker and
result backend), Vigil (`target/debug/vigil serve`), a Celery worker with events on, the
bridge (`vigil-celery`, as pip installed it), and Celery's own `State` fed the same event
stream by an `EventReceiver` in this process."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest
from celery.events.state import State

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "celery-suite-secret-0123456789"
#: Seconds a process gets to come up (Vigil compiles its components at start).
START_TIMEOUT = 60.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout, what, every=0.1):
    """Polls `check` until it returns a truthy value; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Proc:
    """A child process whose output goes to a log file in the suite's directory."""

    def __init__(self, name, argv, workdir, env=None):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.popen = None

    def start(self):
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def tail(self, n=40):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])


class Vigil:
    """Vigil's binary on a fixed port, so it can be killed and started again in place."""

    def __init__(self, workdir):
        self.bin = os.environ.get("VIGIL_BIN", os.path.join(ROOT, "target", "debug", "vigil"))
        if not os.path.exists(self.bin):
            pytest.fail(f"{self.bin} is missing: run `cargo build -p vigil` (scripts/test does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = os.path.join(workdir, "vigil-data")
        argv = [self.bin, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data,
                "--jwt-secret", SECRET, "--rest-rate", "0"]
        self.proc = Proc("vigil", argv, workdir)
        self.admin = self.token("admin")
        self.producer = self.token("producer")

    def token(self, role, sub="celery-suite"):
        out = subprocess.run([self.bin, "token", "--sub", sub, "--role", role, "--ttl", "2h", "--jwt-secret", SECRET],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def start(self):
        self.proc.start()
        wait_until(lambda: self.call("GET", "/health")[0] == 200, START_TIMEOUT, "Vigil to answer")

    def call(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + (token or self.admin))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def get(self, path):
        status, body = self.call("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="vigil-celery-")
    yield d
    if not os.environ.get("VIGIL_KEEP_LOGS"):
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"logs kept in {d}")


@pytest.fixture(scope="session")
def redis(workdir):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is missing: apt-get install redis-server (.ci/run does)")
    port = free_port()
    proc = Proc("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], workdir)
    proc.url = f"redis://127.0.0.1:{port}/0"
    proc.start()
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True, 10, "redis-server")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def celery_app(redis):
    os.environ["VIGIL_TEST_REDIS"] = redis.url
    sys.path.insert(0, HERE)
    import celery_app as module
    module.app.conf.broker_url = module.app.conf.result_backend = redis.url
    return module.app


@pytest.fixture(scope="session")
def vigil(workdir):
    v = Vigil(workdir)
    v.start()
    yield v
    v.proc.stop()


def env_for(redis):
    env = dict(os.environ, VIGIL_TEST_REDIS=redis.url, PYTHONPATH=HERE, PYTHONUNBUFFERED="1")
    env.pop("VIGIL_TOKEN", None)
    return env


@pytest.fixture(scope="session")
def worker(workdir, redis, celery_app):
    argv = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-E", "-c", "2", "-P", "prefork",
            "-Q", "celery,math", "-n", "w1@vigiltest", "--without-gossip", "--without-mingle",
            "--loglevel", "INFO"]
    proc = Proc("worker", argv, workdir, env_for(redis)).start()
    wait_until(lambda: celery_app.control.ping(timeout=0.5), START_TIMEOUT, "the worker to answer ping")
    yield proc
    proc.stop()


def bridge_script():
    found = shutil.which("vigil-celery") or os.path.join(sysconfig.get_path("scripts"), "vigil-celery")
    if not os.path.exists(found):
        pytest.fail("vigil-celery is not installed: pip install -c bridge/constraints.txt './bridge[redis,test]'")
    return found


@pytest.fixture(scope="session")
def bridge(workdir, redis, vigil, worker):
    argv = [bridge_script(), "--broker", redis.url, "--result-backend", redis.url, "--url", vigil.url,
            "--token", vigil.producer, "--depth-every", "1", "--stats-every", "2", "--progress-every", "0.5",
            "--queues", "idle"]
    proc = Proc("bridge", argv, workdir, env_for(redis)).start()
    wait_until(lambda: "reading events" in proc.tail(), START_TIMEOUT, "the bridge to read events")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def celery_state(celery_app, bridge):
    """Celery's own `State`, fed the same stream the bridge reads."""
    state = State()
    stop = threading.Event()

    def consume():
        try:
            with celery_app.connection_for_read() as conn:
                recv = celery_app.events.Receiver(conn, handlers={"*": state.event})
                stop.recv = recv
                recv.capture(limit=None, timeout=None, wakeup=False)
        except Exception:  # noqa: BLE001 — the broker restart at the end ends this stream
            pass

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    wait_until(lambda: hasattr(stop, "recv"), 10, "Celery's State receiver")
    time.sleep(0.5)
    yield state
    stop.recv.should_stop = True
