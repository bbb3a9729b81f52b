"""Pure retry decisions: no sockets, no time."""

from __future__ import annotations

import email.utils

import pytest
import requests

from comet_sync import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    RetryConfig,
)
from comet_sync._exceptions import status_error_class
from comet_sync._headers import parse_retry_after
from comet_sync._retry import backoff_window, decide, is_retryable


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


def test_backoff_window_doubles_then_caps() -> None:
    cfg = RetryConfig(backoff_base=0.5, max_wait=3.0)
    assert [backoff_window(n, cfg) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_window(10_000, cfg) == 3.0  # no overflow


def test_full_jitter_spans_the_window() -> None:
    cfg = RetryConfig(backoff_base=1.0, max_wait=30.0, total_timeout=None)
    exc = status_error(503)
    low = decide(exc, retry_number=3, config=cfg, elapsed=0, random=lambda: 0.0)
    high = decide(exc, retry_number=3, config=cfg, elapsed=0, random=lambda: 0.999)
    assert low.retry and low.wait == 0.0
    assert high.retry and high.wait == pytest.approx(0.999 * 8.0)


def test_every_wait_is_capped() -> None:
    cfg = RetryConfig(max_retries=50, backoff_base=1.0, max_wait=4.0, total_timeout=None)
    waits = [
        decide(status_error(500), retry_number=n, config=cfg, elapsed=0, random=lambda: 0.9999).wait
        for n in range(50)
    ]
    assert max(waits) <= 4.0


def test_retry_after_is_a_floor() -> None:
    cfg = RetryConfig(backoff_base=1.0, max_wait=30.0)
    d = decide(
        status_error(429, retry_after=5.0),
        retry_number=0,
        config=cfg,
        elapsed=0,
        random=lambda: 0.1,
    )
    # the asked 5 s, stretched by a tenth of it times random()
    assert d.retry and d.wait == pytest.approx(5.0 + 5.0 * 0.1 * 0.1)
    # a longer jittered wait is kept (and stretched the same way)
    d = decide(
        status_error(429, retry_after=0.2),
        retry_number=4,
        config=cfg,
        elapsed=0,
        random=lambda: 0.5,
    )
    assert d.wait == pytest.approx(8.0 + 0.2 * 0.1 * 0.5)
    # the stretch never passes max_wait
    d = decide(
        status_error(429, retry_after=30.0),
        retry_number=0,
        config=cfg,
        elapsed=0,
        random=lambda: 0.9,
    )
    assert d.wait == 30.0


def test_retry_after_beyond_max_wait_gives_up() -> None:
    cfg = RetryConfig(max_wait=10.0)
    d = decide(
        status_error(429, retry_after=60.0),
        retry_number=0,
        config=cfg,
        elapsed=0,
        random=lambda: 0.5,
    )
    assert not d.retry
    assert "60" in (d.reason or "") and "max_wait" in (d.reason or "")


def test_wait_that_does_not_fit_the_budget_gives_up() -> None:
    cfg = RetryConfig(total_timeout=10.0)
    d = decide(
        status_error(503, retry_after=4.0),
        retry_number=0,
        config=cfg,
        elapsed=7.0,
        random=lambda: 0.0,
    )
    assert not d.retry and "total_timeout" in (d.reason or "")
    d = decide(
        status_error(503, retry_after=2.0),
        retry_number=0,
        config=cfg,
        elapsed=7.0,
        random=lambda: 0.0,
    )
    assert d.retry and d.wait == 2.0


def test_attempt_limit() -> None:
    cfg = RetryConfig(max_retries=2)
    assert decide(
        status_error(500), retry_number=1, config=cfg, elapsed=0, random=lambda: 0.5
    ).retry
    d = decide(status_error(500), retry_number=2, config=cfg, elapsed=0, random=lambda: 0.5)
    assert not d.retry and "3 attempts" in (d.reason or "")


def test_not_retryable_has_no_reason() -> None:
    d = decide(
        status_error(400), retry_number=0, config=RetryConfig(), elapsed=0, random=lambda: 0.5
    )
    assert d == d.__class__(retry=False)
