"""Models and embeddings over the wire."""

from __future__ import annotations

import pytest

from comet_sync import InvalidArgumentError, Model, RateLimitError


def test_models_list_is_cached_per_client(server, client, fake_time) -> None:
    models = client.models.list()
    assert all(isinstance(m, Model) for m in models)
    assert models[0].id == "gpt-4o-mini" and models[0].owned_by == "fake"
    assert models[0].supported_endpoint_types == ["openai"]
    client.models.list()
    assert len([r for r in server.received if r.path == "/v1/models"]) == 1
    client.models.list(refresh=True)
    assert len([r for r in server.received if r.path == "/v1/models"]) == 2
    fake_time.advance(601)  # past the 10-minute default
    client.models.list()
    assert len([r for r in server.received if r.path == "/v1/models"]) == 3


def test_models_ttl_is_configurable(server, make_client, fake_time) -> None:
    client = make_client(models_ttl=5)
    client.models.list()
    fake_time.advance(6)
    client.models.list()
    assert len([r for r in server.received if r.path == "/v1/models"]) == 2


def test_retrieve(server, client) -> None:
    assert client.models.retrieve("deepseek-chat").id == "deepseek-chat"
    with pytest.raises(InvalidArgumentError, match="not among the models"):
        client.models.retrieve("no-such-model")
    with pytest.raises(InvalidArgumentError):
        client.models.retrieve("")


def test_models_list_retries_like_everything_else(server, client) -> None:
    server.fail(503, times=2)
    assert len(client.models.list()) == 5
    server.fail(429, times=1)
    client.models.list(refresh=True)
    snap = client.metrics.snapshot()[("/models", None)]
    assert snap.retries == 3


def test_embeddings(server, client) -> None:
    out = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"], dimensions=6)
    assert [d.index for d in out.data] == [0, 1]
    assert len(out.data[0].embedding) == 6
    assert out.usage.total_tokens == 3
    assert server.received[-1].body == {
        "model": "text-embedding-3-small",
        "input": ["a b", "c"],
        "dimensions": 6,
    }
    one = client.embeddings.create(model="e", input="a b")  # the server's default: 8 dims
    assert one.data[0].embedding[:6] == out.data[0].embedding  # same text, same vector


def test_embeddings_share_retries_limiter_and_metrics(server, make_client) -> None:
    client = make_client(max_retries=0)
    server.fail(429)
    with pytest.raises(RateLimitError):
        client.embeddings.create(model="e", input="x")
    assert client.metrics.snapshot()[("/embeddings", "e")].throttled == 1
    assert client.in_flight == 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"model": "", "input": "x"}, "model"),
        ({"model": "e", "input": ""}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": [1.5]}, "input"),
        ({"model": "e", "input": {"a": 1}}, "input"),
    ],
)
def test_embeddings_arguments(server, client, kwargs, argument) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.embeddings.create(**kwargs)
    assert info.value.argument == argument
    assert server.stats().requests == 0
