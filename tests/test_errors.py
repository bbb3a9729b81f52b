"""Unexpected answers become our exceptions with status, request id and a body snippet."""

from __future__ import annotations

import logging

import pytest

from comet_sync import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    CometClient,
    CometError,
    InternalServerError,
    NotFoundError,
)

from .conftest import SECRET, user


def test_html_page_on_200(server, client) -> None:
    server.respond_next("<!doctype html><html><body>Welcome to nginx!</body></html>")
    with pytest.raises(APIResponseValidationError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    err = info.value
    assert err.status_code == 200
    assert err.request_id and err.request_id.startswith("fake-")
    assert "Welcome to nginx!" in str(err)
    assert "base_url" in str(err)
    assert server.stats().attempts["a"] == 1  # a 200 is never resent


def test_truncated_json(server, client) -> None:
    server.respond_next('{"id": "chatcmpl-1", "choices": [{"mess', content_type="application/json")
    with pytest.raises(APIResponseValidationError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("b"))
    assert '{"id": "chatcmpl-1"' in str(info.value)


def test_json_of_the_wrong_shape(server, client) -> None:
    server.respond_next({"object": "list", "data": []})
    with pytest.raises(APIResponseValidationError, match="lacks choices"):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("c"))
    server.respond_next([1, 2, 3])
    with pytest.raises(APIResponseValidationError, match="JSON object"):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("c"))


def test_html_error_page_from_a_proxy(server, client) -> None:
    server.fail(502, body="<html><h1>502 Bad Gateway</h1></html>")
    with pytest.raises(InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("d"), max_retries=0)
    assert info.value.status_code == 502
    assert "502 Bad Gateway" in str(info.value)
    assert info.value.body == "<html><h1>502 Bad Gateway</h1></html>"


def test_redirect_is_reported_not_followed(server, client) -> None:
    server.fail(301, body="", headers={"Location": "https://example.invalid/v1/chat"})
    with pytest.raises(APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("e"))
    assert info.value.status_code == 301
    assert "check base_url" in str(info.value)
    assert len(server.received) == 1


def test_wrong_path_404(server, make_client) -> None:
    client = make_client(base_url=server.base_url.replace("/v1", "/v2"))
    with pytest.raises(NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("f"))
    assert "base_url" in str(info.value)


def test_request_id_header_preferred(server, client) -> None:
    server.fail(400, message="bad value for temperature")
    with pytest.raises(APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("g"))
    assert info.value.request_id == server.received[-1].headers.get(
        "X-Oneapi-Request-Id", "-"
    ) or info.value.request_id.startswith("fake-")
    assert info.value.code == ""  # CometAPI's empty code, kept as openai-python keeps it
    assert "bad value for temperature" in str(info.value)


def test_request_id_from_the_message_when_no_header(server, client) -> None:
    server.fail(400, message="bad value", request_id_header=False)
    with pytest.raises(APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("h"))
    assert info.value.request_id is not None
    assert f"(request id: {info.value.request_id})" in str(info.value)


def test_error_code_is_kept(server, client) -> None:
    server.fail(503, code="model_not_found", message="model nope not found")
    with pytest.raises(InternalServerError) as info:
        client.chat.completions.create(model="nope", messages=user("i"))
    assert info.value.code == "model_not_found"
    assert info.value.body["code"] == "model_not_found"  # the error object, as openai's


def test_connection_refused(make_client) -> None:
    client = make_client(base_url="http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(APIConnectionError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("j"))
    assert "connection error" in str(info.value)
    assert info.value.attempts == 2


def test_key_never_leaks(server, make_client, caplog) -> None:
    records = []
    client = make_client(on_request=records.append, max_retries=1)
    caplog.set_level(logging.DEBUG)
    # A gateway that echoes the bad token back in its message.
    server.fail(401, message=f"invalid token {SECRET}")
    with pytest.raises(AuthenticationError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("k"))
    server.fail(503, times=2, message=f"upstream rejected {SECRET}")
    with pytest.raises(InternalServerError) as info2:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("l"))
    client.chat.completions.create(model="gpt-4o-mini", messages=user("m"))
    texts = [
        str(info.value),
        repr(info.value),
        str(info.value.body),
        str(info2.value),
        repr(info2.value),
        repr(client),
        str(client.config),
        caplog.text,
        repr(records),
        repr(client.metrics.snapshot()),
    ]
    assert any("invalid token ***" in t for t in texts)
    for text in texts:
        assert SECRET not in text
    # and it really was sent
    assert server.received[-1].headers["Authorization"] == f"Bearer {SECRET}"


def test_missing_key_names_the_variable(monkeypatch) -> None:
    for name in ("COMETAPI_KEY", "COMET_API_KEY", "COMETAPI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CometError, match="COMETAPI_KEY"):
        CometClient()


def test_key_and_base_url_from_the_environment(monkeypatch, server) -> None:
    monkeypatch.delenv("COMETAPI_KEY", raising=False)
    monkeypatch.setenv("COMET_API_KEY", "fallback-key")
    monkeypatch.setenv("COMETAPI_BASE_URL", server.base_url + "/")
    with CometClient() as client:
        assert client.config.base_url == server.base_url
        client.chat.completions.create(model="gpt-4o-mini", messages=user("n"))
    assert server.received[-1].headers["Authorization"] == "Bearer fallback-key"
    monkeypatch.setenv("COMETAPI_KEY", "primary-key")
    with CometClient() as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("o"))
    assert server.received[-1].headers["Authorization"] == "Bearer primary-key"


def test_default_base_url(monkeypatch) -> None:
    monkeypatch.delenv("COMETAPI_BASE_URL", raising=False)
    with CometClient(api_key="k") as client:
        assert client.config.base_url == "https://api.cometapi.com/v1"


def test_text_that_is_not_unicode_is_refused_naming_where_before_sending(server, client) -> None:
    # A lone surrogate (JSON can spell one: "\ud800") raised a bare UnicodeEncodeError.
    from comet_sync import InvalidArgumentError

    with pytest.raises(InvalidArgumentError) as info:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x \ud800"}]
        )
    assert info.value.argument == "params['messages'][0]['content']"
    assert server.stats().requests == 0
