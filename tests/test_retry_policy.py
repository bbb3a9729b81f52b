"""Retry decisions, driven by hand: what is retryable, and the waits ``retry_waits`` (the
wait generator backoff is handed) yields for each error sent into it. No sockets, no time."""

from __future__ import annotations

import email.utils

import pytest
import requests

from comet_sync import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    Clock,
    RetryConfig,
)
from comet_sync._call.retry import RetryingCall, is_retryable, retry_waits
from comet_sync._http.error_map import status_error_class
from comet_sync._http.headers import parse_retry_after


def status_error(
    status: int, message: str = "x", code: str | None = None, retry_after: float | None = None
):
    cls = status_error_class(status)
    return cls(
        message,
        response=requests.Response(),
        status_code=status,
        code=code,
        retry_after=retry_after,
    )


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 524])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 422])
def test_other_client_errors_are_not(status: int) -> None:
    assert not is_retryable(status_error(status))


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (500, "field messages is required", "invalid_request"),
        (503, "model foo not found", "model_not_found"),
        (429, "x", "insufficient_quota"),
        (429, "Your balance is exhausted, please top up", None),
        (429, "user quota is not enough", ""),
    ],
)
def test_permanent_look_alikes_are_not_retried(status: int, message: str, code: str) -> None:
    assert not is_retryable(status_error(status, message, code))


def test_connection_errors_and_timeouts_are_retried() -> None:
    assert is_retryable(APIConnectionError("reset"))
    assert is_retryable(APITimeoutError("slow"))
    assert not is_retryable(
        APIResponseValidationError("html", response=requests.Response(), status_code=200)
    )
    assert not is_retryable(ValueError("not ours"))


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"retry-after": "3"}, now) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}, now) == 1.5
    assert parse_retry_after({"retry-after-ms": "250"}, now) == 0.25
    # retry-after-ms is finer and wins
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now) == pytest.approx(7.0, abs=1.0)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}, now) is None
    assert parse_retry_after({"retry-after": "-4"}, now) is None
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "2"}, now) == 2.0
    assert parse_retry_after({}, now) is None


class Now:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Waits:
    """The wait generator as backoff drives it: ``send(exc)`` is the wait the call will sleep
    (backoff itself is handed zero: the call sleeps on its own clock)."""

    def __init__(self, call: RetryingCall) -> None:
        self.call = call
        self.gen = retry_waits(call)
        self.gen.send(None)  # primed, as backoff primes it

    def send(self, exc: BaseException) -> float:
        assert self.gen.send(exc) == 0.0
        return self.call.wait


def waits_for(
    cfg: RetryConfig, rand: float = 0.5, now: Now | None = None
) -> tuple[RetryingCall, Waits]:
    """A call under ``cfg`` and its wait generator."""
    clock = Clock(monotonic=now or Now(), sleep=lambda s: None, random=lambda: rand)
    call = RetryingCall(cfg, clock, start=0.0)
    return call, Waits(call)


def test_windows_double_then_cap() -> None:
    # random() just under 1: each wait is (almost) its whole window
    cfg = RetryConfig(backoff_base=0.5, max_wait=3.0, max_retries=50, total_timeout=None)
    _, gen = waits_for(cfg, rand=1.0)
    assert [gen.send(status_error(500)) for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_full_jitter_spans_the_window() -> None:
    cfg = RetryConfig(backoff_base=1.0, max_wait=30.0, total_timeout=None)
    for rand, fourth in ((0.0, 0.0), (0.999, 0.999 * 8.0)):
        _, gen = waits_for(cfg, rand=rand)
        got = [gen.send(status_error(503)) for _ in range(4)]
        assert got[3] == pytest.approx(fourth)


def test_every_wait_is_capped() -> None:
    cfg = RetryConfig(max_retries=50, backoff_base=1.0, max_wait=4.0, total_timeout=None)
    _, gen = waits_for(cfg, rand=0.9999)
    waits = [gen.send(status_error(500)) for _ in range(50)]
    assert max(waits) <= 4.0 and waits[-1] == pytest.approx(4.0 * 0.9999)


def test_retry_after_is_a_floor() -> None:
    cfg = RetryConfig(backoff_base=1.0, max_wait=30.0)
    _, gen = waits_for(cfg, rand=0.1)
    # the asked 5 s, stretched by a tenth of it times random()
    assert gen.send(status_error(429, retry_after=5.0)) == pytest.approx(5.0 + 5.0 * 0.1 * 0.1)
    # a longer jittered wait is kept (and stretched the same way): the 5th window is 16 s
    _, gen = waits_for(cfg, rand=0.5)
    for _ in range(4):
        gen.send(status_error(500))
    assert gen.send(status_error(429, retry_after=0.2)) == pytest.approx(8.0 + 0.2 * 0.1 * 0.5)
    # a floor at max_wait is stretched too: capped, every request refused with it came
    # back at the same instant (30.001 s and 30.002 s)
    for rand in (0.2, 0.9):
        _, gen = waits_for(cfg, rand=rand)
        assert gen.send(status_error(429, retry_after=30.0)) == pytest.approx(30.0 + 3.0 * rand)


def test_the_attempts_are_counted_by_the_call_and_end_the_loop() -> None:
    # One count, the call's: backoff's own max_tries is not used.
    call, waits = waits_for(RetryConfig(max_retries=2))
    for made in (1, 2):
        call.tries = made
        assert waits.send(status_error(503)) >= 0.0
    call.tries = 3
    with pytest.raises(StopIteration):
        waits.send(status_error(503))
    assert call.reason == "3 attempts made (max_retries=2)"


def test_retry_after_beyond_max_wait_ends_the_loop() -> None:
    call, gen = waits_for(RetryConfig(max_wait=10.0))
    with pytest.raises(StopIteration):
        gen.send(status_error(429, retry_after=60.0))
    assert "60" in (call.reason or "") and "max_wait" in (call.reason or "")


def test_wait_that_does_not_fit_the_budget_ends_the_loop() -> None:
    now = Now()
    call, gen = waits_for(RetryConfig(total_timeout=10.0), rand=0.0, now=now)
    now.t = call.started = 7.0  # an attempt that failed at once
    assert gen.send(status_error(503, retry_after=2.0)) == 2.0  # fits in the 3 s left
    with pytest.raises(StopIteration):
        gen.send(status_error(503, retry_after=4.0))
    assert call.reason == (
        "the next wait of 4s and an attempt like the last (0s) do not fit in the 3s left of "
        "total_timeout=10s"
    )


def test_a_retry_needs_time_for_its_attempt_after_its_wait() -> None:
    # Sent with milliseconds left, the attempt timed out and a 502 became our own timeout.
    now = Now()
    call, gen = waits_for(RetryConfig(total_timeout=10.0), rand=0.0, now=now)
    call.started, now.t = 5.5, 7.0  # the last attempt took 1.5 s; 3 s are left
    with pytest.raises(StopIteration):
        gen.send(status_error(502, retry_after=2.0))  # 2 s fit, 2 + 1.5 do not
    assert "an attempt like the last (1.5s)" in (call.reason or "")
