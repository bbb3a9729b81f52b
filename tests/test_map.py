"""map(): input order, laziness on endless input, return_exceptions."""

from __future__ import annotations

import itertools
import threading

import pytest

from comet_sync import BadRequestError, InvalidArgumentError

from .conftest import user


def test_results_come_in_input_order(server, make_client) -> None:
    client = make_client(max_concurrency=4)
    # the first requests are the slowest, so they finish last
    server.delay_next(0.15, times=2)
    jobs = [{"model": "m", "messages": user(str(i))} for i in range(30)]
    out = [r.choices[0].message.content for r in client.chat.completions.map(jobs)]
    assert out == [f"echo: {i}" for i in range(30)]


def test_an_endless_generator_is_read_lazily(server, make_client) -> None:
    client = make_client(max_concurrency=2, max_workers=4)
    pulled = itertools.count()
    lock = threading.Lock()

    def jobs():
        for i in itertools.count():
            with lock:
                next(pulled)
            yield {"model": "m", "messages": user(f"lazy-{i}")}

    results = client.chat.completions.map(jobs(), window=5)
    first = [next(results) for _ in range(10)]
    assert [r.choices[0].message.content for r in first] == [f"echo: lazy-{i}" for i in range(10)]
    with lock:
        taken = next(pulled)
    assert taken <= 10 + 5  # consumed + the window ahead, never the endless rest
    results.close()
    sent = server.stats().requests
    assert sent <= 10 + 5


def test_return_exceptions_keeps_going(server, make_client) -> None:
    client = make_client(max_concurrency=1, max_workers=1)
    server.fail(400, message="bad request for job 0")
    jobs = [
        {"model": "m", "messages": user("0")},  # gets the 400
        {"model": "m", "messages": user("1")},
        {"messages": user("2")},  # no model: rejected before sending
        "not a dict",
        {"model": "m", "messages": user("4")},
    ]
    out = list(client.chat.completions.map(jobs, return_exceptions=True))
    assert isinstance(out[0], BadRequestError)
    assert out[1].choices[0].message.content == "echo: 1"
    assert isinstance(out[2], InvalidArgumentError) and out[2].argument == "model"
    assert isinstance(out[3], InvalidArgumentError) and out[3].argument == "jobs"
    assert out[4].choices[0].message.content == "echo: 4"
    assert server.stats().requests == 3


def test_first_error_is_raised_without_return_exceptions(server, make_client) -> None:
    client = make_client(max_concurrency=1, max_workers=1)
    server.fail(400)
    jobs = ({"model": "m", "messages": user(str(i))} for i in range(100))
    with pytest.raises(BadRequestError):
        list(client.chat.completions.map(jobs, window=3))
    assert server.stats().requests < 100


def test_window_is_checked(client) -> None:
    with pytest.raises(InvalidArgumentError):
        client.chat.completions.map([], window=0)
