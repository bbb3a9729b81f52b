"""comet_sync against limiters it did not design: benchmarks/servers.py, which models how real
APIs limit (sliding and fixed windows, token buckets, token-per-second budgets, concurrency
caps, rate headers in three styles, Retry-After rounded up to whole seconds, failures that
are not about rate). Over a real loopback socket, with real time.

These assert what must hold on any machine — no job lost, no more attempts than the retries
allow, the server's limits learned or heeded — never speed: speed is benchmarks/ratelimit.py.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from comet_sync import CometClient

# Spawns processes or runs real-time scenarios: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

_SPEC = importlib.util.spec_from_file_location(
    "bench_servers", pathlib.Path(__file__).parent.parent / "benchmarks" / "servers.py"
)
assert _SPEC is not None and _SPEC.loader is not None
servers: Any = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = servers  # dataclasses look their module up there
_SPEC.loader.exec_module(servers)

KEY = "sk-real-limiters-0123456789abcdef"


def run(server: Any, n: int, **settings: Any) -> tuple[list[Any], Any]:
    jobs = [{"model": "m", "messages": [{"role": "user", "content": f"job-{i}"}]} for i in range(n)]
    with CometClient(api_key=KEY, base_url=server.base_url, **settings) as client:
        results = list(client.chat.completions.map(jobs, return_exceptions=True))
        state = client.metrics.snapshot().limiter
    return results, state


def failures(results: list[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def attempts_per_job(server: Any) -> Counter[str]:
    return Counter(r.key for r in server.records)


def test_a_token_bucket_without_headers_loses_nothing_and_is_learned() -> None:
    with servers.LimitServer([servers.TokenBucket(40, 10)], retry_after="ms") as srv:
        results, state = run(srv, 120)
    assert failures(results) == []
    model = state.models["m"]
    assert model.throttled > 0 and model.rate_source == "learned"
    assert max(attempts_per_job(srv).values()) <= 6  # never past max_retries


@pytest.mark.parametrize("style", ["openai", "anthropic", "ietf"])
def test_a_per_second_limit_under_any_family_is_paced_per_second(style: str) -> None:
    """Each family's names, counting per its own second (as mock servers and gateways do):
    the window is read off the counters, never taken from the family's minute (which made
    the client 40-60x slower, with no 429 to say so)."""
    with servers.LimitServer(
        [servers.SlidingWindow(40, 1.0)], headers=style, convention=servers.WINDOW
    ) as srv:
        results, state = run(srv, 120)
    assert failures(results) == []
    model = state.models["m"]
    (told,) = model.limits
    assert told.status == "confirmed" and told.window == pytest.approx(1.0, abs=0.1)
    assert model.rate_source in ("header", "learned")  # the lower of the two paces
    assert model.rate is not None and model.rate > 40 * 0.8  # never the minute's 0.67/s


def test_a_per_minute_limit_beside_a_per_second_count_is_paced_by_the_count() -> None:
    """An RPM limit (2400) whose remaining counts a one-second window (Azure enforces an RPM
    over 1 s): the counter never comes near the limit, so the limit is in another unit; the
    counter's own scale (40) over the longest reset (1 s) is what paces."""
    with servers.LimitServer([servers.SlidingWindow(40, 1.0)], headers="openai") as srv:
        results, state = run(srv, 120)
    assert failures(results) == []
    model = state.models["m"]
    (told,) = model.limits
    assert told.limit == 40 and told.window == pytest.approx(1.0, abs=0.1)


def test_a_header_that_lies_about_its_limit_is_no_evidence() -> None:
    """It claims 50 while 100 per second bind: remaining is above the limit, nothing paces on
    it and nothing holds; the client runs as it would without headers."""
    with servers.LimitServer(
        [servers.SlidingWindow(100, 1.0)],
        headers="openai",
        convention=servers.Convention(per="window", claimed_limit=50),
    ) as srv:
        results, state = run(srv, 150)
    assert failures(results) == []
    model = state.models["m"]
    assert model.rate_source != "header" and model.held_for == 0.0


def test_a_long_retry_after_is_waited_by_its_own_request_only() -> None:
    """Every job's first two attempts refused with Retry-After: 2: each waits what it was
    asked, no more than max_wait, and no job's wait holds another's first attempt."""
    with servers.LimitServer(first_429s=2, first_429_retry_after=2) as srv:
        results, _ = run(srv, 16, max_concurrency=16)
    assert failures(results) == []
    times: dict[str, list[float]] = {}
    for record in srv.records:
        times.setdefault(record.key, []).append(record.arrived)
    firsts = sorted(min(t) for t in times.values())
    gaps = [b - a for t in times.values() for a, b in zip(sorted(t), sorted(t)[1:])]
    assert min(gaps) >= 2.0 - 0.05  # never under what the server asked
    assert max(gaps) <= 30.0
    # No first attempt waited for another job's 429 (a pace of 4/s would spread them 3 s).
    assert firsts[-1] - firsts[0] < 2.0, [round(t - firsts[0], 3) for t in firsts]


def test_429s_back_before_the_last_first_attempts_go_out_teach_no_pace() -> None:
    """The convoy's start, made certain: 8 jobs' first attempts are refused (Retry-After: 1,
    whatever the rate) and back before 8 more jobs start. Nothing sent was ever accepted, so
    these 429s say nothing of a rate: no pace, no cut. (Before: the first 429 halved the send
    rate, and the next first attempts left paced, one more wait on each call.)"""
    with (
        servers.LimitServer(first_429s=2, first_429_retry_after=1) as srv,
        CometClient(api_key=KEY, base_url=srv.base_url, max_concurrency=16) as client,
        ThreadPoolExecutor(16) as pool,
    ):

        def call(i: int) -> Any:
            content = f"job-{i}"
            return client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": content}]
            )

        early = [pool.submit(call, i) for i in range(8)]
        deadline = time.monotonic() + 10.0
        while sum(r.status == 429 for r in srv.records) < 8:  # all 8 refusals are back
            assert time.monotonic() < deadline, "the first 8 attempts never came back"
            time.sleep(0.005)
        late = [pool.submit(call, i) for i in range(8, 16)]
        for future in early + late:
            future.result()
        state = client.metrics.snapshot().limiter
    assert state is not None and state.models is not None
    model = state.models["m"]
    assert model.cuts == 0 and model.rate is None, model


def test_a_concurrency_cap_is_found() -> None:
    with servers.LimitServer([servers.Concurrency(3)], latency=0.05, retry_after=None) as srv:
        results, state = run(srv, 90, max_concurrency=16)
    assert failures(results) == []
    assert state.models["m"].concurrency_limit <= 8


def test_every_first_attempt_503_loses_nothing() -> None:
    with servers.LimitServer(first_attempt_503=True) as srv:
        results, _ = run(srv, 100)
    assert failures(results) == []
    assert set(attempts_per_job(srv).values()) == {2}  # retried once each, no more


def test_random_503s_with_the_callers_retries_lose_nothing() -> None:
    with servers.LimitServer(random_503=0.3, seed=3) as srv:
        results, _ = run(srv, 150, max_retries=10, max_wait=2.0)
    assert failures(results) == []  # 0.3 ** 11 per job: none expected


def test_random_429s_are_shown_not_to_be_about_rate() -> None:
    # max_wait 2 s keeps the retry tail short (what is tested is the pace, not the waits).
    with servers.LimitServer(random_429=0.3, seed=5) as srv:
        results, state = run(srv, 300, max_retries=10, max_wait=2.0)
    assert failures(results) == []
    model = state.models["m"]
    # Pacing stopped, or never went far below what the server gave: no collapse to the floor.
    assert model.rate is None or model.rate > 5.0
