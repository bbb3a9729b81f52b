"""The opt-in response cache: keyed by the whole request, single-flight, errors not kept."""

from __future__ import annotations

import threading
import time

import pytest

from comet_sync import (
    APITimeoutError,
    BadRequestError,
    CometClient,
    InvalidArgumentError,
    RequestRecord,
    ResponseCache,
)

from .conftest import SECRET, user


def test_off_by_default(server, client) -> None:
    for _ in range(2):
        client.chat.completions.create(model="m", messages=user("a"))
    assert server.stats().attempts["a"] == 2


def test_identical_requests_are_answered_once(server, make_client) -> None:
    records: list[RequestRecord] = []
    client = make_client(cache=ResponseCache(), on_request=records.append)
    first = client.chat.completions.create(model="m", messages=user("a"), temperature=0)
    again = client.chat.completions.create(temperature=0, messages=user("a"), model="m")
    assert again == first
    assert server.stats().attempts["a"] == 1
    assert [r.cached for r in records] == [False, True]
    assert records[1].attempts == 0 and records[1].status == 200
    stats = client.metrics.snapshot()[("/chat/completions", "m")]
    assert stats.cache_hits == 1 and stats.by_status == {"200": 1, "cached": 1}


def test_every_parameter_is_part_of_the_key(server, make_client) -> None:
    client = make_client(cache=ResponseCache())
    client.chat.completions.create(model="m", messages=user("b"))
    client.chat.completions.create(model="m", messages=user("b"), temperature=0.5)
    client.chat.completions.create(model="m2", messages=user("b"))
    client.chat.completions.create(model="m", messages=user("b"), extra_body={"seed": 1})
    assert server.stats().attempts["b"] == 4


def test_errors_are_never_cached(server, make_client) -> None:
    client = make_client(cache=ResponseCache())
    server.fail(400)
    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="m", messages=user("c"))
    client.chat.completions.create(model="m", messages=user("c"))
    assert server.stats().attempts["c"] == 2


def test_streams_bypass_the_cache(server, make_client) -> None:
    client = make_client(cache=ResponseCache())
    for _ in range(2):
        with client.chat.completions.create(model="m", messages=user("d"), stream=True) as s:
            list(s)
    assert server.stats().attempts["d"] == 2


def test_entries_expire(server, make_client, fake_time) -> None:
    client = make_client(cache=ResponseCache(ttl=10, timer=fake_time.monotonic))
    client.chat.completions.create(model="m", messages=user("e"))
    fake_time.advance(11)
    client.chat.completions.create(model="m", messages=user("e"))
    assert server.stats().attempts["e"] == 2


def test_single_flight_under_many_threads(server, make_client) -> None:
    server.configure(latency=0.05)
    cache = ResponseCache()
    client = make_client(cache=cache, max_concurrency=8)
    barrier = threading.Barrier(50)
    answers: list[str] = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        barrier.wait()
        reply = client.chat.completions.create(model="m", messages=user(f"q{i % 5}"))
        with lock:
            answers.append(reply.choices[0].message.content)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 50
    assert server.stats().requests == 5  # one per distinct prompt
    assert cache.misses == 5 and cache.hits == 45


def test_a_failed_flight_lets_a_waiter_lead() -> None:
    cache = ResponseCache()
    calls = 0
    started = threading.Event()
    release = threading.Event()

    def failing() -> str:
        nonlocal calls
        calls += 1
        started.set()
        release.wait()
        raise RuntimeError("upstream down")

    def working() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    results: list[object] = []
    leader = threading.Thread(
        target=lambda: results.append(_try(lambda: cache.get_or_call("k", failing)))
    )
    leader.start()
    started.wait()
    follower = threading.Thread(target=lambda: results.append(cache.get_or_call("k", working)))
    follower.start()
    release.set()
    leader.join()
    follower.join()
    assert ("ok", False) in results
    assert calls == 2


def _try(fn):
    try:
        return fn()
    except RuntimeError as exc:
        return exc


def test_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        ResponseCache(maxsize=0)
    with pytest.raises(InvalidArgumentError):
        ResponseCache(ttl=0)
    assert ResponseCache.key("/r", {"a": 1, "b": 2}) == ResponseCache.key("/r", {"b": 2, "a": 1})


def test_a_waiter_that_times_out_names_its_request(server) -> None:
    """A call that times out waiting on another thread's identical call sent nothing of its
    own; its error still names the request (openai-python's ``e.request``)."""
    with CometClient(api_key=SECRET, base_url=server.base_url, cache=ResponseCache()) as client:
        server.delay_next(1.0)
        leader = threading.Thread(
            target=client.chat.completions.create, kwargs={"model": "m", "messages": user("x")}
        )
        leader.start()
        deadline = time.monotonic() + 10
        while server.stats().requests == 0:  # until the leader's request is a flight to wait on
            assert time.monotonic() < deadline, "the leader's request never arrived"
            time.sleep(0.01)
        with pytest.raises(APITimeoutError, match="identical call") as caught:
            client.chat.completions.create(model="m", messages=user("x"), total_timeout=0.2)
        leader.join()
    request = caught.value.request
    assert (request.method, request.url) == ("POST", f"{server.base_url}/chat/completions")


def test_a_raw_call_has_the_head_of_the_answer_it_fetched_and_none_from_the_cache(
    server, make_client
) -> None:
    """The engine returns each answer with its head; the cache keeps bodies only, so the
    call that went to the server has the server's head and a hit has none of its own."""
    client = make_client(cache=ResponseCache())
    raw = client.chat.completions.with_raw_response.create
    fetched = raw(model="m", messages=user("h"), temperature=0)
    hit = raw(model="m", messages=user("h"), temperature=0)
    assert server.stats().attempts["h"] == 1
    assert fetched.http_response is not None and fetched.request_id
    assert fetched.headers["content-type"].startswith("application/json")
    assert hit.http_response is None and hit.status_code == 200 and dict(hit.headers) == {}
    assert hit.parse() == fetched.parse()
