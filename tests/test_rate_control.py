"""Adaptive rate control: the policies on exact times, the limiter, and the client on the wire."""

from __future__ import annotations

import math
import random
import threading
import time

import pytest

from comet_sync import InternalServerError, InvalidArgumentError, RateControl, RateLimitError
from comet_sync._control import AIMDConcurrency, Pacer, RateLearner, RetryBudget
from comet_sync._limiter import Limiter

from .conftest import FakeTime, user

# -- AIMD concurrency --------------------------------------------------------------------------


def aimd(ceiling: int = 32, initial: int = 4) -> AIMDConcurrency:
    return AIMDConcurrency(ceiling, decrease=0.6, initial=initial, probe_interval=1.0,
                           max_probe_interval=8.0)


def test_slow_start_doubles_per_window_and_only_when_used() -> None:
    a = aimd()
    assert a.effective == 4
    assert not a.on_success(in_flight_at_send=2, sent_at=0.0, now=0.1)  # limit not used
    for _ in range(4):  # one window of saturated successes
        a.on_success(in_flight_at_send=a.effective, sent_at=0.0, now=0.1)
    assert a.effective == 8
    for _ in range(100):
        a.on_success(in_flight_at_send=a.effective, sent_at=0.0, now=0.1)
    assert a.effective == 32  # the ceiling


def test_cut_recover_hold_probe() -> None:
    a = aimd(initial=10)
    a.cut(level=10, now=5.0)
    assert a.effective == 6  # 10 * 0.6
    # fast recovery, one per success, to just under the refused level
    for _ in range(10):
        a.on_success(in_flight_at_send=a.effective, sent_at=5.1, now=5.1)
    assert a.effective == 9
    # hold there until the probe interval has passed
    a.on_success(in_flight_at_send=9, sent_at=5.5, now=5.5)
    assert a.effective == 9
    # then probe, one step per window (about 9 successes)
    for _ in range(10):
        a.on_success(in_flight_at_send=9, sent_at=6.1, now=6.1)
    assert a.effective == 10
    # the refused level succeeded after the cut: forgotten, growth goes on
    a.on_success(in_flight_at_send=10, sent_at=6.2, now=6.2)
    assert a.refused_level is None


def test_floor_is_one_and_repeated_refusals_probe_less_often() -> None:
    a = aimd(initial=2)
    for t in range(5):
        a.cut(level=2, now=float(t))
    assert a.effective == 1
    assert a.interval == 8.0  # 1 -> 2 -> 4 -> 8 (capped)
    a.cut(level=1, now=10.0)
    assert a.effective == 1
    a.limit, a.refused_level = 5.0, 9
    a.cut(level=4, now=11.0)  # refused lower than before: a new level, interval resets
    assert a.interval == 1.0


# -- pacing --------------------------------------------------------------------------------------


def test_pacer_spaces_sends_evenly() -> None:
    p = Pacer(rate=10.0, burst=1.0)
    waits = [p.reserve(1.0, now=0.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_pacer_burst_and_refill() -> None:
    p = Pacer(rate=10.0, burst=3.0)
    assert [p.reserve(1.0, now=0.0) for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])
    # a second later the bucket is full again
    assert p.reserve(1.0, now=1.5) == 0.0


def test_pacer_costs_adjustment_and_new_rate() -> None:
    p = Pacer(rate=100.0, burst=100.0)  # tokens per second
    assert p.reserve(100.0, now=0.0) == 0.0
    assert p.reserve(50.0, now=0.0) == pytest.approx(0.5)
    p.adjust(-50.0)  # the first call used 50 tokens, not 100
    assert p.reserve(50.0, now=0.0) == pytest.approx(0.5)
    p.set_rate(50.0, now=0.0)  # the backlog of 1.5 s at 100/s is 3 s at 50/s
    assert p.tat == pytest.approx(3.0)


def test_rate_learner_learns_cuts_recovers_and_probes() -> None:
    r = RateLearner(horizon=2.0, margin=0.9, decrease=0.85, recover=1.0, probe=0.05,
                    floor=0.1, probe_interval=1.0, max_probe_interval=8.0, hold=0.25)
    r.on_sent(0.0)
    assert r.on_throttled(0.1) is None  # nothing accepted yet: nothing to learn
    for i in range(100):
        r.on_accepted(i * 0.025)  # 40 per second for 2.5 s
    assert r.on_throttled(2.5) == pytest.approx(0.9 * 40, rel=0.05)
    assert r.on_throttled(2.6) is None  # within the hold: the old excess
    learned = r.rate
    assert learned is not None
    # recovers fast to 0.9 x refused, then holds until the probe interval
    r.on_success_paced(3.0)
    assert r.rate == pytest.approx(min(learned * 1.5, 0.9 * 40), rel=0.05)
    r.refused = 40.0
    r.rate = 36.0
    assert r.on_success_paced(3.2) is None  # holding: the probe comes at 2.5 + 1.0
    assert r.on_success_paced(4.0) == pytest.approx(36.0 * (1 + 0.05 * 0.8))  # probing


def test_retry_budget() -> None:
    b = RetryBudget(ratio=0.2, floor_per_second=0.5, initial=2.0, capacity=10.0, now=0.0)
    assert b.try_spend(0.0) and b.try_spend(0.0)
    assert not b.try_spend(0.0)
    for _ in range(5):
        b.on_first_attempt(0.0)  # 5 x 0.2 = one retry
    assert b.try_spend(0.0)
    assert not b.try_spend(0.0)
    assert b.try_spend(2.0)  # 2 s x 0.5 = one retry
    b.on_first_attempt(1000.0)
    assert b.tokens == 10.0  # capped


# -- the limiter -------------------------------------------------------------------------------


def make_limiter(ft: FakeTime, control: RateControl | None = None, limit: int = 8,
                 rnd: float = 0.5) -> Limiter:
    return Limiter(limit, control or RateControl(), clock=ft.monotonic, sleep=ft.sleep,
                   random=lambda: rnd)


def test_one_cut_per_window() -> None:
    ft = FakeTime()
    lim = make_limiter(ft, RateControl(initial_concurrency=8))
    burst = [lim.acquire() for _ in range(8)]
    assert lim.limit == 8 and all(p is not None for p in burst)
    ft.advance(0.1)
    for permit in burst:  # the whole burst comes back 429
        permit.release(429, throttled=True)
    assert lim.limit == 4  # 8 * 0.6, once
    assert lim.state().cuts == 1
    late = lim.acquire()  # sent after the cut: its 429 is news
    ft.advance(0.1)
    late.release(429, throttled=True)
    assert lim.state().cuts == 2


def test_cooldown_pauses_new_sends_and_spreads_the_restart() -> None:
    for rnd, expected in ((0.0, 2.0), (0.999, 2.0 + 0.999 * 2.0)):
        ft = FakeTime()
        lim = make_limiter(ft, rnd=rnd)
        p = lim.acquire()
        p.release(429, throttled=True, retry_after=2.0)
        start = ft.now
        again = lim.acquire()  # a different caller: it waits too
        waited = ft.now - start
        assert waited == pytest.approx(expected)
        again.release(200)
        assert lim.state().cooldowns == 1
        # the pause is over and was waited for once: the next send goes at once
        before = ft.now
        lim.acquire().release(200)
        assert ft.now == before


def test_cooldown_can_be_switched_off() -> None:
    ft = FakeTime()
    lim = make_limiter(ft, RateControl(cooldown=False))
    lim.acquire().release(429, throttled=True, retry_after=5.0)
    lim.acquire().release(200)
    assert ft.sleeps == []


def test_configured_rpm_paces_callers() -> None:
    ft = FakeTime()
    lim = make_limiter(ft, RateControl(rpm=600, burst_seconds=0.1))  # 10/s, burst 1
    for _ in range(5):
        lim.acquire().release(200)
    assert ft.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1])


def test_tpm_paces_by_estimated_tokens_and_corrects_from_usage() -> None:
    ft = FakeTime()
    lim = make_limiter(ft, RateControl(tpm=6000, burst_seconds=1.0))  # 100 tokens/s
    assert lim.paces_tokens
    lim.acquire(cost=100).release(200, total_tokens=20)  # used far less than estimated
    lim.acquire(cost=50).release(200, total_tokens=50)
    assert ft.sleeps == []  # without the correction this one would have waited 0.5 s
    lim.acquire(cost=100).release(200)
    assert ft.sleeps == pytest.approx([0.7])  # 70 tokens used, the bucket holds 100


def test_timeout_while_waiting() -> None:
    ft = FakeTime()
    lim = make_limiter(ft, RateControl.off(), limit=1)
    held = lim.acquire()
    assert lim.acquire(timeout=0.01) is None
    held.release(200)
    lim2 = make_limiter(ft, RateControl(rpm=60, burst_seconds=0.5))  # 1/s
    lim2.acquire().release(200)
    assert lim2.acquire(timeout=0.5) is None  # would have to wait 1 s


def test_permit_release_is_idempotent() -> None:
    ft = FakeTime()
    lim = make_limiter(ft)
    p = lim.acquire()
    p.release(200)
    p.release(200)
    assert lim.in_use == 0 and not p.held


def test_switches_validate() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        RateControl(decrease=1.5)
    assert info.value.argument == "decrease"
    with pytest.raises(InvalidArgumentError):
        RateControl(rpm=0)
    with pytest.raises(InvalidArgumentError):
        RateControl(initial_concurrency=0)


def test_many_threads_keep_the_books_straight() -> None:
    lim = Limiter(6, RateControl(), clock=time.monotonic, sleep=lambda s: None,
                  random=random.random)
    seen_max = 0
    guard = threading.Lock()
    in_flight = 0

    def work(seed: int) -> None:
        nonlocal seen_max, in_flight
        rng = random.Random(seed)
        for _ in range(200):
            p = lim.acquire()
            with guard:
                in_flight += 1
                seen_max = max(seen_max, in_flight)
            with guard:
                in_flight -= 1
            p.release(429 if rng.random() < 0.05 else 200, throttled=True)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lim.in_use == 0
    assert seen_max <= 6
    assert 1 <= lim.limit <= 6


# -- the client on the wire --------------------------------------------------------------------


def test_state_appears_in_the_snapshot(server, make_client) -> None:
    client = make_client(max_concurrency=8, rpm=120)
    client.chat.completions.create(model="m", messages=user("a"))
    state = client.metrics.snapshot().limiter
    assert state.max_concurrency == 8 and state.rpm == 120
    assert state.in_flight == 0 and state.cuts == 0


def test_retry_budget_refuses_retries_in_an_outage(server, make_client, fake_time) -> None:
    client = make_client(rate_control=RateControl(retry_initial=1, retry_ratio=0.0,
                                                  retry_floor_per_second=0.0))
    server.configure(outage=503)
    with pytest.raises(InternalServerError) as info:
        client.chat.completions.create(model="m", messages=user("b"))
    assert "retry budget exhausted" in str(info.value)
    assert server.stats().attempts["b"] == 2  # one retry, then the budget was spent
    refused_at = fake_time.now
    with pytest.raises(InternalServerError):
        client.chat.completions.create(model="m", messages=user("c"))
    # the refusal paused new sends (outage_pause, 1 s, plus its spread)
    assert fake_time.now - refused_at >= 1.0
    assert server.stats().attempts["c"] == 1
    assert client.metrics.snapshot().limiter.retries_refused == 2


def test_429_retries_are_not_charged_to_the_budget(server, make_client) -> None:
    client = make_client(rate_control=RateControl(retry_initial=0, retry_ratio=0.0,
                                                  retry_floor_per_second=0.0, cooldown=False))
    server.fail(429, times=3)
    client.chat.completions.create(model="m", messages=user("d"))
    assert server.stats().attempts["d"] == 4


def test_retry_after_pauses_other_threads_on_the_wire(server, make_client, fake_time) -> None:
    client = make_client()
    server.fail(429, headers={"Retry-After": "4"})
    with pytest.raises(RateLimitError):
        client.chat.completions.create(model="m", messages=user("e"), max_retries=0)
    before = fake_time.now
    client.chat.completions.create(model="m", messages=user("f"))
    assert fake_time.now - before >= 4.0  # the next call waited out the pause


def test_finds_an_unknown_concurrency_limit(server) -> None:
    # Real time: the server allows 4 in flight; the client may send 32 and is not told.
    from comet_sync import CometClient

    server.configure(max_in_flight=4, latency=0.03)
    with CometClient(api_key="k", base_url=server.base_url, max_concurrency=32) as client:
        jobs = ({"model": "m", "messages": user(f"g{i}")} for i in range(120))
        results = list(client.chat.completions.map(jobs, return_exceptions=True))
        state = client.metrics.snapshot().limiter
    assert not [r for r in results if isinstance(r, BaseException)]
    n429 = server.stats().statuses.get(429, 0)
    assert n429 <= 24, n429  # 20% at the very worst; the benchmark measures the real share
    assert state.concurrency_limit <= 8
    assert not math.isnan(state.concurrency_limit)
