"""The Responses API through the same limiter, retries, records, cache and batches as chat."""

from __future__ import annotations

import json

import pytest

import comet_sync
from comet_sync import RequestRecord, ResponseCache

from .conftest import user


def test_create_and_output_text(server, make_client) -> None:
    records: list[RequestRecord] = []
    client = make_client(on_request=records.append)
    reply = client.responses.create(model="gpt-5", input="say hello", instructions="be brief")
    assert isinstance(reply, comet_sync.Response)
    assert reply.output_text == "echo: say hello" and reply.status == "completed"
    assert reply.usage.total_tokens == 5
    assert server.received[-1].path == "/v1/responses"
    assert server.received[-1].body["instructions"] == "be brief"
    assert records[-1].route == "/responses" and records[-1].ok
    stats = client.metrics.snapshot()[("/responses", "gpt-5")]
    assert stats.prompt_tokens == 2 and stats.completion_tokens == 3


def test_input_items_and_retries(server, make_client, fake_time) -> None:
    client = make_client()
    server.fail(503)
    reply = client.responses.create(model="gpt-5", input=user("items"))
    assert reply.output_text == "echo: items"
    assert fake_time.sleeps == [0.5]  # the same retry policy as chat


def test_streaming_typed_events(server, client) -> None:
    with client.responses.create(model="gpt-5", input="one two three", stream=True) as stream:
        types = []
        text = ""
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert text == "echo: one two three"
    again = client.responses.create(model="gpt-5", input="x y", stream=True)
    assert "".join(again.text_deltas()) == "echo: x y"
    final = client.responses.create(model="gpt-5", input="z", stream=True).get_final_response()
    assert final.output_text == "echo: z"
    assert client.in_flight == 0  # every stream gave its slot back


def test_a_stream_cut_before_completion_is_an_error(server, client) -> None:
    server.fail(200, passthrough=True, stream_cut_after=2)
    stream = client.responses.create(model="gpt-5", input="a b c d", stream=True)
    with pytest.raises(comet_sync.APIConnectionError, match="cut"):
        list(stream)


def test_bad_arguments_fail_before_sending(server, client) -> None:
    for kwargs, argument in [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
    ]:
        with pytest.raises(comet_sync.InvalidArgumentError) as caught:
            client.responses.create(**kwargs)
        assert caught.value.argument == argument
    assert server.stats().requests == 0


def test_cached_and_fallbacks(server, make_client) -> None:
    client = make_client(cache=ResponseCache(), max_retries=0)
    server.fail(503, code="model_not_found")
    first = client.responses.create(model="m1", input="q", fallbacks=["m2"])
    second = client.responses.create(model="m2", input="q")
    assert first.output_text == second.output_text
    assert [r.body["model"] for r in server.received] == ["m1", "m2"]  # the second was cached


def test_in_a_batch_as_an_openai_line(server, tmp_path) -> None:
    from .test_batch import cli, read_output

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        json.dumps(
            {
                "custom_id": "r1",
                "method": "POST",
                "url": "/v1/responses",
                "body": {"model": "gpt-5", "input": "hello"},
            }
        )
        + "\n"
    )
    result = cli(
        server, "batch", str(src), "-o", str(out), "--output-format", "openai", "--no-progress"
    )
    assert result.returncode == 0, result.stderr
    [line] = read_output(out)
    assert line["response"]["body"]["object"] == "response"
