"""The window's early open: a job started before the window exists, followed later."""

import threading

import pytest

from studio.core import verbs
from studio.core.errors import LoadError
from studio.core.jobs import Cancelled, CancelToken, Prefetch, run
from studio.core.model.request import ModelRequest

GATE = threading.Event()


def slow_job(n, cancel=None, fail=None):
    for i in range(n):
        yield {"type": "progress", "step": i, "total": n, "what": f"step {i}"}
        if i == 1:
            GATE.wait(10)
        cancel.check()
    if fail is not None:
        raise fail
    return n * 10


def test_follow_replays_every_event_and_returns_the_result():
    GATE.clear()
    p = Prefetch(f"{__name__}:slow_job", 4)
    events = []
    gen = p.follow()
    events.append(next(gen))  # the first, before the job can finish
    GATE.set()
    assert run(gen, events.append) == 40
    assert [e["step"] for e in events] == [0, 1, 2, 3]


def test_an_error_in_the_thread_reaches_the_follower():
    GATE.set()
    p = Prefetch(f"{__name__}:slow_job", 3, fail=LoadError("no such model"))
    with pytest.raises(LoadError, match="no such model"):
        run(p.follow())


def test_cancelling_the_follower_stops_the_job():
    GATE.clear()
    p = Prefetch(f"{__name__}:slow_job", 5)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run(p.follow(token))
    GATE.set()
    p._thread.join(10)
    assert isinstance(p._error, Cancelled)


def test_open_prefetched_opens_again_after_a_crash_but_not_after_a_refusal(tmp_path):
    GATE.set()
    crashed = Prefetch(f"{__name__}:slow_job", 2, fail=RuntimeError("import race"))
    o = run(verbs.open_prefetched(crashed, ModelRequest(spec="demo")))
    assert o.lm.name.startswith("demo") and o.structure.groups
    refused = Prefetch(f"{__name__}:slow_job", 2, fail=LoadError("wrong architecture"))
    with pytest.raises(LoadError):
        run(verbs.open_prefetched(refused, ModelRequest(spec="demo")))


def test_the_prefetched_open_equals_a_fresh_one():
    p = Prefetch("studio.core.verbs:open_model", ModelRequest(spec="demo"))
    a = run(verbs.open_prefetched(p, ModelRequest(spec="demo")))
    b = run(verbs.open_model(ModelRequest(spec="demo")))
    assert a.structure.fingerprint == b.structure.fingerprint
    assert a.scores.keys() == b.scores.keys() == {"l1"}
