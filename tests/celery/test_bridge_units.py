"""The bridge's own logic, without a cluster: the bounded buffer and what it does with
each answer, progress from `update_state` meta, token renewal timing, bad URL/token."""

import base64
import json
import threading

import pytest

from vigil_celery.client import AuthError, VigilClient, VigilError, token_times
from vigil_celery.forwarder import Forwarder
from vigil_celery.receiver import Seen
from vigil_celery.reporters import progress_of


class FakeClient:
    """Answers each POST with the next scripted (status, body) — or raises OSError."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.batches = []

    def renew_if_due(self):
        return False

    def post_events(self, events):
        self.batches.append([e["n"] for e in events])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def events(fw, n, start=0):
    for i in range(start, start + n):
        fw.put({"type": "task-sent", "uuid": str(i), "n": i})


def test_events_stay_buffered_until_vigil_acknowledges_them():
    client = FakeClient([OSError("refused"), (503, {}), (202, {"accepted": 3, "refused": []})])
    fw = Forwarder(client, max_buffer=10, batch=5, flush=0)
    events(fw, 3)
    batch = fw._next_batch(threading.Event())
    assert not fw.send(batch) and fw.pending() == 3, "Vigil away: kept"
    assert not fw.send(batch) and fw.pending() == 3, "503: kept"
    assert fw.send(batch) and fw.pending() == 0
    assert client.batches == [[0, 1, 2]] * 3
    assert fw.forwarded == 3


def test_a_full_buffer_drops_the_oldest_and_counts_them():
    fw = Forwarder(FakeClient([]), max_buffer=4, batch=10, flush=0)
    events(fw, 7)
    assert (fw.pending(), fw.dropped) == (4, 3)
    assert [e["n"] for _, e in fw._buf] == [3, 4, 5, 6]


def test_drops_during_a_send_do_not_lose_newer_events():
    client = FakeClient([(202, {"accepted": 2, "refused": []})])
    fw = Forwarder(client, max_buffer=3, batch=2, flush=0)
    events(fw, 2)
    batch = fw._next_batch(threading.Event())
    events(fw, 2, start=2)  # the buffer overflows while the batch is in flight
    assert fw.send(batch)
    assert [e["n"] for _, e in fw._buf] == [2, 3]


def test_refusals_are_counted_and_oversized_batches_split():
    client = FakeClient([
        (413, {}), (202, {"accepted": 1, "refused": [{"index": 0, "error": {"message": "bad"}}]}),
        (202, {"accepted": 2, "refused": []}), (422, {"error": {}}),
    ])
    fw = Forwarder(client, max_buffer=10, batch=4, flush=0)
    events(fw, 4)
    assert fw.send(fw._next_batch(threading.Event()))
    assert client.batches == [[0, 1, 2, 3], [0, 1], [2, 3]]
    assert (fw.forwarded, fw.refused, fw.pending()) == (3, 1, 0)
    events(fw, 1)
    assert fw.send(fw._next_batch(threading.Event())) and fw.refused == 2, "a refused batch is not retried"


def test_progress_from_update_state_meta():
    assert progress_of("PROGRESS", {"current": 3, "total": 12}) == (25.0, None)
    assert progress_of("PROGRESS", {"progress": 40, "step": "load"}) == (40.0, "load")
    assert progress_of("PROGRESS", {"current": 5, "total": 0}) is None
    assert progress_of("SUCCESS", {"current": 1, "total": 1}) is None
    assert progress_of("STARTED", {"pid": 4}) is None
    assert progress_of("PROGRESS", {"progress": 250}) == (100.0, None)


def jwt(claims):
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"h.{body}.s"


def test_tokens_are_renewed_at_80_percent_of_their_life():
    assert token_times(jwt({"iat": 100, "exp": 200})) == (100, 200)
    assert token_times("garbage") == (None, None)
    c = VigilClient("http://127.0.0.1:9", jwt({"iat": 100, "exp": 200}))
    c.renew = lambda: "renewed"
    assert c.renew_if_due(now=170) is False
    assert c.renew_if_due(now=181) == "renewed"


def test_a_bad_url_or_token_is_a_clear_error():
    with pytest.raises(VigilError, match="http"):
        VigilClient("localhost:3000", "t")
    with pytest.raises(AuthError, match="no token"):
        VigilClient("http://127.0.0.1:3000", "")
    with pytest.raises(VigilError, match="cannot reach Vigil"):
        VigilClient("http://127.0.0.1:9", "t").check()


def test_seen_tracks_queues_and_running_tasks():
    s = Seen(["extra"])
    s.observe({"type": "task-sent", "uuid": "a", "queue": "math"})
    s.observe({"type": "task-started", "uuid": "a"})
    s.observe({"type": "task-started", "uuid": "b"})
    s.observe({"type": "task-succeeded", "uuid": "b"})
    assert s.snapshot() == ({"extra", "math"}, ["a"])
