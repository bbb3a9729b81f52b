"""Every call leaves a record: hook, logs, snapshot."""

from __future__ import annotations

import logging

import pytest

from comet_sync import APIConnectionError, Metrics, RateLimitError, RequestRecord, format_table

from .conftest import user


def test_record_fields_for_a_success_after_retries(server, make_client, fake_time) -> None:
    records: list[RequestRecord] = []
    client = make_client(on_request=records.append)
    server.fail(429, times=1)
    server.fail(503, times=1)
    client.chat.completions.create(model="gpt-4o-mini", messages=user("two words"))
    (rec,) = records
    assert rec.route == "/chat/completions"
    assert rec.model == "gpt-4o-mini"
    assert rec.status == 200
    assert rec.attempts == 3
    assert rec.attempt_statuses == (429, 503, 200)
    assert rec.latency == pytest.approx(0.5 + 1.0)  # fake time: only the waits
    assert rec.request_id == server.received[-1].headers.get(
        "x-request-id"
    ) or rec.request_id.startswith("fake-")
    assert rec.error is None and rec.ok
    assert rec.usage == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_wire_latency_leaves_out_waits_and_time_queued_in_our_limiter(
    server, make_client, fake_time
) -> None:
    """Issue 23: the table's latency included time queued in our limiter (p50 440 ms on a
    zero-latency server) and nothing said so. Fake time moves only in our sleeps, so the
    whole latency here is waits and queueing, and none of it is on the wire."""
    records: list[RequestRecord] = []
    client = make_client(on_request=records.append, rpm=60)
    server.fail(503, times=1)
    client.chat.completions.create(model="m", messages=user("one"))
    client.chat.completions.create(model="m", messages=user("two"))
    first, second = records
    assert first.latency == pytest.approx(
        1.0
    )  # the pace (1 s) before the retry; its wait fits in it
    assert second.latency == pytest.approx(1.0)  # queued 1 s for its turn under rpm=60
    assert first.wire_latency == 0.0 and second.wire_latency == 0.0
    st = client.metrics.snapshot()[("/chat/completions", "m")]
    assert st.p50 == pytest.approx(1.0) and st.wire_p50 == 0.0
    assert "wire p50 ms" in format_table(client.metrics.snapshot())


def test_wire_latency_is_the_time_on_the_wire() -> None:
    from comet_sync import CometClient
    from comet_sync.testing import FakeCometServer

    records: list[RequestRecord] = []
    with (
        FakeCometServer(latency=0.05) as fake,
        CometClient(
            api_key="sk-test-0123456789abcdef", base_url=fake.base_url, on_request=records.append
        ) as client,
    ):
        client.chat.completions.create(model="m", messages=user("x"))
        with client.chat.completions.create(model="m", messages=user("y"), stream=True) as s:
            list(s)
    for rec in records:
        assert 0.05 <= rec.wire_latency <= rec.latency, rec


def test_record_for_a_failure_and_no_response(server, make_client) -> None:
    records: list[RequestRecord] = []
    client = make_client(on_request=records.append, max_retries=0)
    server.fail(429)
    with pytest.raises(RateLimitError):
        client.chat.completions.create(model="m", messages=user("a"))
    server.reset_next()
    with pytest.raises(APIConnectionError):
        client.chat.completions.create(model="m", messages=user("b"))
    assert records[0].status == 429 and records[0].error == "RateLimitError"
    assert records[0].request_id and records[0].request_id.startswith("fake-")
    assert records[1].status is None and records[1].error == "APIConnectionError"
    assert records[1].attempt_statuses == (None,)


def test_a_failing_hook_never_breaks_the_call(server, make_client, caplog) -> None:
    def broken(rec: RequestRecord) -> None:
        raise RuntimeError("hook bug")

    client = make_client(on_request=broken)
    reply = client.chat.completions.create(model="m", messages=user("c"))
    assert reply.choices[0].message.content == "echo: c"
    assert "on_request hook raised" in caplog.text


def test_logs_debug_per_attempt_and_warning_on_give_up(server, make_client, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="comet_sync")
    client = make_client(max_retries=1)
    server.fail(503, times=2)
    with pytest.raises(Exception):  # noqa: B017
        client.chat.completions.create(model="m", messages=user("d"))
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and r.name == "comet_sync"]
    warn = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "comet_sync"]
    assert any("waiting 0.500s" in r.getMessage() for r in debug)
    assert len(warn) == 1 and "giving up" in warn[0].getMessage()


def test_snapshot_per_route_and_model(server, make_client) -> None:
    client = make_client(max_retries=0)
    for i in range(10):
        client.chat.completions.create(model="a", messages=user(f"x{i}"))
    server.fail(429, times=1)
    client.chat.completions.create(model="b", messages=user("y"), max_retries=1)
    server.fail(400)
    with pytest.raises(Exception):  # noqa: B017
        client.chat.completions.create(model="b", messages=user("z"))
    snap = client.metrics.snapshot()
    a = snap[("/chat/completions", "a")]
    b = snap[("/chat/completions", "b")]
    assert (a.calls, a.ok, a.failed, a.retries) == (10, 10, 0, 0)
    assert a.by_status == {"200": 10}
    assert a.p50 is not None and a.p50 <= a.p95 <= a.p99
    assert a.total_tokens == a.prompt_tokens + a.completion_tokens > 0
    assert (b.calls, b.ok, b.failed, b.retries, b.throttled) == (2, 1, 1, 1, 1)
    assert b.by_status == {"200": 1, "400": 1}
    table = format_table(snap)
    assert "429s" in table and "/chat/completions" in table


def test_memory_stays_bounded() -> None:
    metrics = Metrics(latency_window=50, max_keys=3)
    for model in range(20):
        for i in range(200):
            metrics.record(
                RequestRecord(
                    route="/r", model=f"m{model}", status=200, latency=float(i), attempts=1
                )
            )
    snap = metrics.snapshot()
    assert set(snap) == {("/r", "m17"), ("/r", "m18"), ("/r", "m19")}
    # percentiles over the last 50 latencies only (150..199)
    assert snap[("/r", "m19")].p50 == 174.0
    assert snap[("/r", "m19")].calls == 200
