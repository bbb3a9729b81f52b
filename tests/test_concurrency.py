"""Many threads, one client: the bound holds at the server and connections are reused."""

from __future__ import annotations

import logging
import threading

from comet_sync import CometClient

from .conftest import user


def hammer(client: CometClient, threads: int, calls_per_thread: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait()
        for i in range(calls_per_thread):
            try:
                reply = client.chat.completions.create(model="m", messages=user(f"{t}-{i}"))
                assert reply.choices[0].message.content == f"echo: {t}-{i}"
            except BaseException as exc:  # collected, asserted on below
                errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return errors


def test_64_threads_never_exceed_the_bound(server, make_client, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3")
    server.configure(latency=0.005)
    client = make_client(max_concurrency=5)
    errors = hammer(client, threads=64, calls_per_thread=5)
    assert errors == []
    stats = server.stats()
    assert stats.requests == 320
    assert stats.max_in_flight == 5  # reached, never exceeded
    # keep-alive: at most one connection per slot, however many threads
    assert stats.connections_opened <= 5
    assert "Connection pool is full" not in caplog.text
    assert client.in_flight == 0


def test_direct_calls_and_executor_share_one_bound(server, make_client) -> None:
    server.configure(latency=0.005)
    client = make_client(max_concurrency=3, max_workers=12)
    jobs = ({"model": "m", "messages": user(f"map-{i}")} for i in range(60))
    results: list[object] = []
    mapper = threading.Thread(target=lambda: results.extend(client.chat.completions.map(jobs)))
    mapper.start()
    errors = hammer(client, threads=16, calls_per_thread=4)
    mapper.join()
    assert errors == []
    assert len(results) == 60
    assert server.stats().max_in_flight <= 3


def test_slots_are_released_on_errors(server, make_client) -> None:
    client = make_client(max_concurrency=2, max_retries=0)
    server.fail(500, times=10)
    server.reset_next(times=5)
    errors = hammer(client, threads=8, calls_per_thread=3)
    assert len(errors) == 15
    assert client.in_flight == 0
    # the client still works at full width afterwards
    assert hammer(client, threads=4, calls_per_thread=2) == []
