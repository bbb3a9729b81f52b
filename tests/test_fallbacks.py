"""Model fallbacks: a call moves to the next model only when the model is the problem."""

from __future__ import annotations

import json

import pytest

import comet_sync
from comet_sync import RequestRecord

from .conftest import user


def models_sent(server) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.body["model"] for r in server.received]


def test_an_unavailable_model_moves_on_and_the_record_says_why(server, make_client) -> None:
    records: list[RequestRecord] = []
    client = make_client(on_request=records.append)
    server.fail(503, code="model_not_found", message="no available channel for model m1")
    reply = client.chat.completions.create(model="m1", messages=user("x"), fallbacks=["m2", "m3"])
    assert reply.choices[0].message.content == "echo: x"
    assert models_sent(server) == ["m1", "m2"]
    assert [r.model for r in records] == ["m1", "m2"]
    assert records[0].error == "InternalServerError" and records[1].ok
    assert records[1].fallback_from == "m1" and "unavailable" in records[1].fallback_reason
    stats = client.metrics.snapshot()
    assert stats[("/chat/completions", "m1")].fallbacks == 1
    assert stats[("/chat/completions", "m2")].fallbacks == 0


def test_server_errors_through_every_retry_move_on(server, make_client) -> None:
    client = make_client(max_retries=1)
    server.fail(500, times=2)
    client.chat.completions.create(model="m1", messages=user("x"), fallbacks=["m2"])
    assert models_sent(server) == ["m1", "m1", "m2"]


@pytest.mark.parametrize(
    "status,fault",
    [
        (400, {"message": "bad temperature"}),
        (401, {"message": "invalid token"}),
        (500, {"code": "invalid_request", "message": "field messages is required"}),
        (429, {"message": "insufficient quota: balance exhausted"}),
    ],
)
def test_errors_the_request_or_account_causes_never_move_on(
    server, make_client, status: int, fault: dict
) -> None:
    client = make_client(max_retries=0)
    server.fail(status, **fault)
    with pytest.raises(comet_sync.APIStatusError):
        client.chat.completions.create(model="m1", messages=user("x"), fallbacks=["m2"])
    assert models_sent(server) == ["m1"]


def test_the_client_default_by_model(server, make_client) -> None:
    client = make_client(max_retries=0, fallbacks={"m1": ["m2"], "*": ["m9"]})
    server.fail(404, code="model_not_found", times=1)
    client.chat.completions.create(model="m1", messages=user("x"))
    server.fail(503, times=1)
    client.chat.completions.create(model="m5", messages=user("y"))
    assert models_sent(server) == ["m1", "m2", "m5", "m9"]


def test_a_stream_moves_on_before_its_first_chunk(server, make_client) -> None:
    client = make_client(max_retries=0)
    server.fail(503, code="model_not_found")
    with client.chat.completions.create(
        model="m1", messages=user("hi there"), stream=True, fallbacks=["m2"]
    ) as stream:
        text = "".join(stream.text_deltas())
    assert text and models_sent(server) == ["m1", "m2"]


def test_fallbacks_are_checked_before_sending(server, client) -> None:
    with pytest.raises(comet_sync.InvalidArgumentError) as caught:
        client.chat.completions.create(model="m1", messages=user("x"), fallbacks="m2")
    assert caught.value.argument == "fallbacks" and server.stats().requests == 0


def test_a_batch_line_with_fallbacks(server, make_client) -> None:
    client = make_client(max_retries=0)
    server.fail(503, code="model_not_found")
    jobs = [{"custom_id": "a", "model": "m1", "messages": user("x"), "fallbacks": ["m2"]}]
    [result] = list(comet_sync.run_batch(client, jobs))
    assert result.ok and models_sent(server) == ["m1", "m2"]
    assert all("fallbacks" not in r.body for r in server.received)
    assert json.dumps(result.to_json())


def test_embeddings_move_on_as_chat_does(server, make_client) -> None:
    records: list[RequestRecord] = []
    client = make_client(max_retries=0, on_request=records.append, fallbacks={"e1": ["e9"]})
    server.fail(503, code="model_not_found", message="no available channel for model e1")
    out = client.embeddings.create(model="e1", input="a b", fallbacks=["e2"])
    assert out.data[0].embedding and models_sent(server) == ["e1", "e2"]
    assert records[1].fallback_from == "e1" and "unavailable" in records[1].fallback_reason
    assert all("fallbacks" not in r.body for r in server.received)
    # The client's own entry naming the model, when the call names none; never for an error
    # the request causes.
    server.fail(404, code="model_not_found")
    client.embeddings.create(model="e1", input="c")
    server.fail(400, message="input too long")
    with pytest.raises(comet_sync.BadRequestError):
        client.embeddings.create(model="e1", input="d")
    assert models_sent(server)[2:] == ["e1", "e9", "e1"]


@pytest.mark.parametrize("default", [["gpt-4o-mini"], {"*": ["gpt-4o-mini"]}])
def test_a_client_wide_fallback_never_moves_an_embedding(server, make_client, default) -> None:
    """Vectors from another model are in another space: a default written for chat models
    (a list, or "*") must not silently mix them into a user's index."""
    client = make_client(max_retries=0, fallbacks=default)
    server.fail(404, code="model_not_found")
    with pytest.raises(comet_sync.NotFoundError):
        client.embeddings.create(model="e1", input="a")
    server.fail(404, code="model_not_found")
    client.chat.completions.create(model="c1", messages=[{"role": "user", "content": "hi"}])
    assert models_sent(server) == ["e1", "c1", "gpt-4o-mini"]


def test_an_embeddings_batch_line_with_fallbacks(server, make_client) -> None:
    from comet_sync._batch.engine import EMBEDDINGS_ROUTE

    client = make_client(max_retries=0)
    server.fail(503, code="model_not_found")
    job = comet_sync.BatchJob(
        custom_id="e",
        body={"model": "e1", "input": "x", "fallbacks": ["e2"]},
        route=EMBEDDINGS_ROUTE,
    )
    [result] = list(comet_sync.run_batch(client, [job]))
    assert result.ok and result.response is not None and result.response["data"]
    assert models_sent(server) == ["e1", "e2"] and result.attempts == 1


def test_an_outage_our_throttle_saw_moves_to_the_fallback_but_a_spent_budget_does_not() -> None:
    from comet_sync import LimiterTimeoutError
    from comet_sync._call.fallback import fallback_reason

    spent = LimiterTimeoutError("budget", held_by="pacing")
    outage = LimiterTimeoutError("held", held_by="the adaptive throttle", outage=True)
    assert fallback_reason(spent) is None
    assert fallback_reason(outage) == "in an outage (held by our throttle past max_wait)"
