"""Streaming over a real socket: chunks, helpers, retries before the first event, cuts, and
slots that are always given back."""

from __future__ import annotations

import gc
import logging

import pytest

from comet_sync import (
    APIConnectionError,
    APIStatusError,
    ChatCompletionChunk,
    InternalServerError,
    RequestRecord,
    Stream,
)

from .conftest import user


def open_stream(client, text: str, **kw) -> Stream:
    return client.chat.completions.create(model="m", messages=user(text), stream=True, **kw)


def test_chunks_in_the_openai_shape(server, client) -> None:
    with open_stream(client, "one two three") as stream:
        chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "echo: one two three"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[0].obfuscation == "x"  # unknown fields kept
    assert server.received[-1].body["stream"] is True


def test_text_deltas_and_final_completion_with_usage(server, client) -> None:
    server.configure(stream_chunks=3)
    with open_stream(client, "alpha beta", stream_options={"include_usage": True}) as stream:
        first = next(stream.text_deltas())
        final = stream.get_final_completion()
    assert first == "echo: a"[: len(first)]
    assert final.choices[0].message.content == "echo: alpha beta"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert final.usage.latency_checkpoint == 1


def test_tool_calls_are_assembled_from_fragments(server, client) -> None:
    events = [
        {
            "id": "c1",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_", "arguments": ""},
                            }
                        ],
                    },
                }
            ],
        },
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"name": "weather", "arguments": '{"city": '}}
                        ]
                    },
                }
            ],
        },
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"arguments": '"Rome"}'}},
                            {
                                "index": 1,
                                "id": "call_2",
                                "function": {"name": "now", "arguments": "{}"},
                            },
                        ]
                    },
                }
            ],
        },
        {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    import json

    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    server.respond_next(body, content_type="text/event-stream")
    with open_stream(client, "weather?") as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "now"]
    assert json.loads(calls[0].function.arguments) == {"city": "Rome"}
    assert calls[0].id == "call_1" and calls[1].id == "call_2"
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.model == "m"


def test_retries_before_the_first_event(server, client, fake_time) -> None:
    server.fail(429)
    server.fail(503)
    server.fail(200, stream_cut_after=0)  # the connection breaks before any event
    with open_stream(client, "retry me") as stream:
        assert "".join(stream.text_deltas()) == "echo: retry me"
    assert server.stats().attempts["retry me"] == 4
    assert len(fake_time.sleeps) >= 3


def test_a_cut_stream_raises_and_says_how_much_arrived(server, client) -> None:
    server.fail(200, stream_cut_after=2)
    stream = open_stream(client, "a b c d e")
    with pytest.raises(APIConnectionError, match="cut after 2 chunk"):
        list(stream)
    assert stream.chunks_received == 2
    assert client.in_flight == 0
    assert server.stats().attempts["a b c d e"] == 1  # never retried after the first event


def test_a_stream_without_done_is_a_cut_stream(server, client) -> None:
    server.fail(200, stream_no_done=True)
    with (
        pytest.raises(APIConnectionError, match="without data: \\[DONE\\]"),
        open_stream(client, "no done") as stream,
    ):
        list(stream)


def test_an_error_event_raises_the_matching_error(server, client) -> None:
    server.fail(200, stream_error_after=1)
    with pytest.raises(InternalServerError) as info, open_stream(client, "x y z") as stream:
        list(stream)
    assert "upstream failed mid-stream" in str(info.value)
    assert info.value.code == "upstream_error"
    assert isinstance(info.value, APIStatusError)


def test_a_json_answer_to_a_stream_request_is_reported(server, client) -> None:
    from comet_sync import APIResponseValidationError

    server.respond_next({"choices": []})
    with pytest.raises(APIResponseValidationError, match="expected an event stream"):
        open_stream(client, "json")


def test_the_stream_holds_its_slot_until_it_ends(server, make_client) -> None:
    client = make_client(max_concurrency=2)
    a = open_stream(client, "a a a")
    b = open_stream(client, "b b b")
    assert client.in_flight == 2
    next(a)
    a.close()
    assert client.in_flight == 1
    list(b)
    assert client.in_flight == 0


@pytest.mark.slow
def test_abandoned_streams_leak_nothing(server, make_client, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3")
    client = make_client(max_concurrency=4)
    for i in range(1000):
        stream = open_stream(client, f"w{i} x y z")
        next(stream)
        if i % 3 == 0:
            del stream  # garbage: the finalizer gives back the slot
        elif i % 3 == 1:
            stream.close()
        else:
            try:
                with stream:
                    raise RuntimeError("the view failed")
            except RuntimeError:
                pass
    gc.collect()
    assert client.in_flight == 0
    state = client.metrics.snapshot().limiter
    assert state.concurrency_limit == 4  # full capacity
    # and the pool is healthy: ordinary calls still work, without pool warnings
    for i in range(10):
        client.chat.completions.create(model="m", messages=user(f"after {i}"))
    assert "Connection pool is full" not in caplog.text


def test_the_record_is_written_when_the_stream_ends(server, make_client) -> None:
    records: list[RequestRecord] = []
    client = make_client(on_request=records.append)
    server.configure(stream_chunks=4)
    with open_stream(client, "r e c") as stream:
        assert records == []  # not yet: the stream is open
        list(stream)
    (rec,) = records
    assert rec.status == 200 and rec.chunks == 5  # 4 content chunks + the finish chunk
    assert rec.first_chunk_latency is not None
    assert 0 <= rec.first_chunk_latency <= rec.latency
    server.fail(200, stream_cut_after=1)
    with pytest.raises(APIConnectionError), open_stream(client, "cut") as stream:
        list(stream)
    assert records[-1].error == "APIConnectionError" and records[-1].chunks == 1


def test_streams_read_to_their_end_keep_their_connection(server, client) -> None:
    # The body's last bytes after [DONE] are read, so the next call reuses the connection
    # (a new one per stream would be a TLS handshake per stream against the real API).
    for i in range(5):
        with client.chat.completions.create(
            model="m", messages=user(f"s{i}"), stream=True
        ) as stream:
            assert "".join(stream.text_deltas()) == f"echo: s{i}"
    client.chat.completions.create(model="m", messages=user("after"))
    assert server.stats().connections_opened == 1
    # A stream left early cannot be reused: its connection is closed, and the next call opens
    # a fresh one.
    with client.chat.completions.create(model="m", messages=user("a b c d"), stream=True) as s:
        next(s)
    client.chat.completions.create(model="m", messages=user("again"))
    assert server.stats().connections_opened == 2
