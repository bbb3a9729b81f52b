"""Retry rules over a real socket; fake time so every wait is checked exactly."""

from __future__ import annotations

from typing import Any

import pytest

from comet_sync import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    InternalServerError,
    RateControl,
    RateLimitError,
)
from comet_sync._http.error_map import status_error_class

from .conftest import user


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 524])
def test_transient_status_is_retried_then_succeeds(server, client, fake_time, status) -> None:
    server.fail(status, times=2)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    assert reply.choices[0].message.content == "echo: a"
    assert server.stats().attempts["a"] == 3
    # random() is 0.5: half of the 1 s and 2 s full-jitter windows
    assert fake_time.sleeps == [0.5, 1.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_sent_once(server, client, fake_time, status) -> None:
    server.fail(status, message="nope")
    with pytest.raises(status_error_class(status)) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("b"))
    assert info.value.status_code == status
    assert server.stats().attempts["b"] == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("status", "code", "message", "error"),
    [
        (500, "invalid_request", "field messages is required", InternalServerError),
        (503, "model_not_found", "model foo not found", InternalServerError),
        (429, "insufficient_quota", "you have no quota left", RateLimitError),
        (429, "", "user balance is not enough", RateLimitError),
    ],
)
def test_permanent_look_alikes_are_sent_once(server, client, status, code, message, error) -> None:
    server.fail(status, code=code, message=message)
    with pytest.raises(error) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("c"))
    assert info.value.giveup_reason is None  # not retryable, not "gave up"
    assert server.stats().attempts["c"] == 1


def test_connection_reset_is_retried(server, client) -> None:
    server.reset_next(times=2)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("d"))
    assert reply.choices[0].message.content == "echo: d"
    assert server.stats().attempts["d"] == 3


def test_timeouts_are_retried_and_raised_as_timeouts(server, make_client, fake_time) -> None:
    client = make_client(max_retries=1, timeout=0.2)
    server.delay_next(1.0, times=2)
    with pytest.raises(APITimeoutError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("e"))
    assert isinstance(info.value, APIConnectionError)
    assert info.value.attempts == 2
    assert "2 attempts" in str(info.value)


def test_retry_after_is_never_undercut(server, make_client, fake_time) -> None:
    # Rate control off: only the retry waits are slept. Each is what the server asked plus
    # a tenth of it times random() (0.5 here), so a herd refused together does not return
    # together.
    client = make_client(rate_control=RateControl.off())
    server.fail(429, times=1, headers={"Retry-After": "3"})
    server.fail(503, times=1, headers={"retry-after-ms": "1500"})
    client.chat.completions.create(model="gpt-4o-mini", messages=user("f"))
    assert fake_time.sleeps == pytest.approx([3.15, 1.575])


def test_retry_after_longer_than_max_wait_fails_fast(server, make_client, fake_time) -> None:
    client = make_client(max_wait=10)
    server.fail(429, times=1, headers={"Retry-After": "120"})
    with pytest.raises(RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("g"))
    assert info.value.retry_after == 120.0
    assert "max_wait" in str(info.value)
    assert fake_time.sleeps == []
    assert server.stats().attempts["g"] == 1


def test_every_wait_within_the_cap(server, make_client, fake_time) -> None:
    client = make_client(max_retries=8, max_wait=2.0, random=lambda: 0.9999, total_timeout=None)
    server.fail(503, times=8)
    client.chat.completions.create(model="gpt-4o-mini", messages=user("h"))
    assert len(fake_time.sleeps) == 8
    assert max(fake_time.sleeps) <= 2.0
    assert fake_time.sleeps[0] == pytest.approx(0.9999)


def test_attempt_budget(server, make_client, fake_time) -> None:
    client = make_client(max_retries=2)
    server.fail(429, times=10)
    with pytest.raises(RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("i"))
    assert server.stats().attempts["i"] == 3
    assert info.value.attempts == 3
    assert "3 attempts made (max_retries=2)" in str(info.value)
    assert len(fake_time.sleeps) == 2


def test_per_call_max_retries_override(server, client) -> None:
    server.fail(500, times=1)
    with pytest.raises(InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("j"), max_retries=0)
    assert server.stats().attempts["j"] == 1


def test_time_budget_caps_the_whole_call(server, make_client, fake_time) -> None:
    client = make_client(max_retries=20, total_timeout=10.0, random=lambda: 0.99)
    server.fail(503, times=100)
    with pytest.raises(InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("k"))
    # waits 0.99, 1.98, 3.96 sum to 6.93; the next (7.92) does not fit in what is left
    assert fake_time.sleeps == pytest.approx([0.99, 1.98, 3.96])
    assert sum(fake_time.sleeps) <= 10.0
    assert "total_timeout" in str(info.value)
    assert server.stats().attempts["k"] == 4


def test_per_call_total_timeout_override(server, client, fake_time) -> None:
    server.fail(503, times=5)
    with pytest.raises(InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("l"), total_timeout=0.4)
    assert server.stats().attempts["l"] == 1


def test_urllib3_does_not_retry_on_its_own(server, client) -> None:
    server.fail(400, times=1)
    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("m"), max_retries=0)
    server.reset_next(times=1)
    with pytest.raises(APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("n"), max_retries=0)
    assert server.stats().attempts["n"] == 1


def test_real_sleep_is_used_by_default(server) -> None:
    # No injected sleep: the waits are real (kept tiny by Retry-After-free 0-width windows).
    from comet_sync import CometClient

    with CometClient(
        api_key="k", base_url=server.base_url, backoff_base=0.001, random=lambda: 1.0
    ) as client:
        server.fail(503, times=2)
        client.chat.completions.create(model="gpt-4o-mini", messages=user("o"))
    assert server.stats().attempts["o"] == 3


def test_a_call_whose_budget_is_spent_before_it_is_sent_times_out(server, make_client) -> None:
    import itertools

    from comet_sync import APITimeoutError

    ticks = itertools.count(0.0, 1.0)  # every look at the clock costs the whole 1 s budget
    client = make_client(clock=lambda: next(ticks), total_timeout=1.0)
    with pytest.raises(APITimeoutError, match="ran out before it could be sent"):
        client.chat.completions.create(model="m", messages=user("x"))
    assert server.stats().requests == 0


def test_backoff_is_the_retry_loop(server, make_client, fake_time, monkeypatch) -> None:
    # The client's retry loop is what backoff.on_exception built, and backoff's own count of
    # tries drives it (public API only: the decorator and the details it hands its handlers);
    # each wait is then slept on the call's clock.
    import backoff

    built: list[object] = []
    tries: list[int] = []
    real = backoff.on_exception

    def on_exception(*args: Any, **kwargs: Any) -> Any:
        handler = kwargs["on_backoff"]

        def on_backoff(details: Any) -> None:
            tries.append(details["tries"])
            handler(details)

        kwargs["on_backoff"] = on_backoff
        decorator = real(*args, **kwargs)
        built.append(decorator)
        return decorator

    monkeypatch.setattr(backoff, "on_exception", on_exception)
    client = make_client()
    monkeypatch.undo()
    assert built  # the client's loop is backoff's
    server.fail(503, times=1)
    server.fail(429, times=1, headers={"Retry-After": "3"})
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("bk"))
    assert reply.choices[0].message.content == "echo: bk"
    assert tries == [1, 2]  # backoff's count, before each of its waits
    # 0.5 of the 1 s window; then the 3 s asked for, plus a tenth of it times 0.5
    assert fake_time.sleeps == [0.5, 3.15]
    assert server.stats().attempts["bk"] == 3


def test_a_users_own_backoff_is_untouched_by_ours(server, make_client) -> None:
    # Importing and using comet_sync once replaced backoff's module-level `time` for the whole
    # process: every other @backoff in a user's project slept through our module.
    import time as _time

    import backoff
    import backoff._sync

    client = make_client()
    server.fail(503, times=1)
    client.chat.completions.create(model="gpt-4o-mini", messages=user("ours"))
    assert backoff._sync.time is _time  # backoff sleeps with time.sleep, as it always did
    tries: list[int] = []

    @backoff.on_exception(backoff.constant, ValueError, interval=0.001, max_tries=3, jitter=None)
    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ValueError("not yet")
        return "done"

    assert flaky() == "done"
    assert len(tries) == 3


def test_a_deadline_on_the_callers_clock_is_exact(server, make_client, fake_time) -> None:
    # deadline() measured on the same fake clock as the client: the budget is 2 s, the waits
    # are half of the 1, 2, 4 s windows; the third wait (2 s at 1.5 s spent) does not fit.
    from comet_sync import Clock, deadline

    client = make_client()
    server.fail(503, times=5)
    clock = Clock(fake_time.monotonic, fake_time.sleep)
    with deadline(2.0, clock=clock), pytest.raises(InternalServerError) as info:
        client.chat.completions.create(model="m", messages=user("dl"))
    assert fake_time.sleeps == [0.5, 1.0]
    assert server.stats().attempts["dl"] == 3
    assert info.value.attempts == 3
    assert info.value.giveup_reason == (
        "the next wait of 2s and an attempt like the last (0s) do not fit in the 0.5s left "
        "of total_timeout=2s"
    )


def test_a_call_our_limiter_holds_past_its_budget_counts_no_attempt(server, make_client) -> None:
    # One request a minute told, a 0.5 s budget: the second call cannot be let out in time.
    # Nothing was sent for it, and its error says so (an attempt begun is not one sent).
    from comet_sync import LimiterTimeoutError

    client = make_client(rpm=1, total_timeout=0.5)
    client.chat.completions.create(model="m", messages=user("first"))
    with pytest.raises(LimiterTimeoutError) as info:
        client.chat.completions.create(model="m", messages=user("second"))
    assert info.value.attempts == 0
    assert "second" not in server.stats().attempts
    record = client.metrics.snapshot()[("/chat/completions", "m")]
    assert record.calls == 2 and record.failed == 1
