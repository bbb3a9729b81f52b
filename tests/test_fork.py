"""A client created before fork must not share its connections, locks or executor."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from comet_sync import APITimeoutError, CometClient, deadline, time_left

from .conftest import user

# Forks processes: `make test-fast` leaves it out.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork"),
]


def child_calls(client: CometClient, queue) -> None:  # runs in the forked child
    try:
        for i in range(3):
            client.chat.completions.create(model="m", messages=user(f"child {i}"))
        future = client.chat.completions.submit(model="m", messages=user("child submit"))
        future.result(timeout=30)
        snap = client.metrics.snapshot()
        queue.put(("ok", snap[("/chat/completions", "m")].calls, client.in_flight))
    except BaseException as exc:  # reported to the parent
        queue.put(("error", repr(exc), None))


def test_fork_gets_fresh_connections_and_the_parent_is_unharmed(server) -> None:
    ctx = multiprocessing.get_context("fork")
    client = CometClient(api_key="fork-test-key-0123456789", base_url=server.base_url)
    client.chat.completions.create(model="m", messages=user("parent before"))
    client.chat.completions.submit(model="m", messages=user("parent pool")).result()
    assert server.stats().connections_opened == 1
    queue = ctx.Queue()
    proc = ctx.Process(target=child_calls, args=(client, queue))
    proc.start()
    status, calls, in_flight = queue.get(timeout=60)
    proc.join(timeout=60)
    assert status == "ok", calls
    assert calls == 4  # the child's metrics start fresh: only its own calls
    assert in_flight == 0
    # the child opened a connection of its own instead of writing on the parent's socket
    assert server.stats().connections_opened == 2
    client.chat.completions.create(model="m", messages=user("parent after"))
    assert server.stats().connections_opened == 2  # the parent's connection still works
    assert client.metrics.snapshot()[("/chat/completions", "m")].calls == 3
    client.close()


def test_deadline_caps_calls_in_the_block(server, make_client, fake_time) -> None:
    client = make_client()
    server.fail(503, times=10)
    with deadline(3.0):
        left = time_left()
        assert left is not None and 2.5 < left <= 3.0
        with pytest.raises(Exception) as info:
            client.chat.completions.create(model="m", messages=user("d"))
    assert "total_timeout" in str(info.value)
    assert sum(fake_time.sleeps) <= 3.0
    assert time_left() is None


def test_deadline_already_passed(server, client) -> None:
    import time

    with deadline(0.01):
        time.sleep(0.02)
        with pytest.raises(APITimeoutError, match="deadline passed"):
            client.chat.completions.create(model="m", messages=user("late"))
    assert server.stats().requests == 0


def test_deadline_follows_submitted_calls(server, make_client, fake_time) -> None:
    client = make_client()
    server.fail(503, times=10)
    with deadline(1.5):
        future = client.chat.completions.submit(model="m", messages=user("s"))
    with pytest.raises(Exception, match="total_timeout"):
        future.result(timeout=30)
