"""The client's surface: arguments, pass-through, overrides, lifecycle."""

from __future__ import annotations

import pytest

from comet_sync import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    CometClient,
    InvalidArgumentError,
    Timeout,
)

from .conftest import SECRET, user


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": "hello"}, "messages"),
        ({"model": "m", "messages": {"role": "user", "content": "x"}}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": ["hello"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "42"}]},
            "messages[0].tool_call_id",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "timeout": -1}, "timeout"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_retries": -1},
            "max_retries",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "extra_headers": {"X-A": 1},
            },
            "extra_headers",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "extra_body": [1]},
            "extra_body",
        ),
    ],
)
def test_bad_arguments_fail_before_sending(server, client, kwargs, argument) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.chat.completions.create(**kwargs)
    assert info.value.argument == argument
    assert str(info.value).startswith(argument)
    with pytest.raises(InvalidArgumentError):
        client.chat.completions.submit(**kwargs)
    assert server.stats().requests == 0


@pytest.mark.parametrize("stream", ["yes", "false", 1])
def test_stream_must_be_true_or_false(server, client, stream) -> None:
    """stream picks what create returns: "false" (truthy) streamed by accident."""
    with pytest.raises(InvalidArgumentError) as info:
        client.chat.completions.create(model="m", messages=user("x"), stream=stream)
    assert info.value.argument == "stream"
    with pytest.raises(InvalidArgumentError) as info:
        client.responses.create(model="m", input="x", stream=stream)
    assert info.value.argument == "stream"
    assert server.stats().requests == 0


@pytest.mark.parametrize(
    "kwargs, missing, typo",
    [
        ({"modle": "m", "messages": [{"role": "user", "content": "x"}]}, "model", "modle"),
        ({"model": "m", "mesages": [{"role": "user", "content": "x"}]}, "messages", "mesages"),
    ],
)
def test_a_misspelled_required_argument_is_named(server, client, kwargs, missing, typo) -> None:
    """Unknown parameters pass through to the API, so a misspelling is only seen when it
    leaves a required one missing: the error says which key the user probably meant."""
    with pytest.raises(InvalidArgumentError) as info:
        client.chat.completions.create(**kwargs)
    assert info.value.argument == missing
    assert repr(typo) in str(info.value)
    assert server.stats().requests == 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"max_workers": 0}, "max_workers"),
        ({"max_retries": "3"}, "max_retries"),
        ({"max_wait": 0}, "max_wait"),
        ({"timeout": "fast"}, "timeout"),
        ({"total_timeout": -5}, "total_timeout"),
        ({"base_url": "api.cometapi.com"}, "base_url"),
        ({"on_request": "print"}, "on_request"),
    ],
)
def test_bad_client_settings(kwargs, argument) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        CometClient(api_key="k", **kwargs)
    assert info.value.argument == argument


def test_unknown_parameters_pass_through(server, client) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        temperature=0.2,
        reasoning_effort="low",
        tools=tools,
        some_provider_knob={"a": 1},
        extra_body={"max_completion_tokens": 9},
    )
    body = server.received[-1].body
    assert body["temperature"] == 0.2
    assert body["reasoning_effort"] == "low"
    assert body["tools"] == tools
    assert body["some_provider_knob"] == {"a": 1}
    assert body["max_completion_tokens"] == 9
    for option in ("extra_body", "timeout", "max_retries"):
        assert option not in body


def test_extra_headers_reach_the_server(server, client) -> None:
    client.chat.completions.create(model="m", messages=user("a"), extra_headers={"X-Trace": "t-1"})
    headers = server.received[-1].headers
    assert headers["X-Trace"] == "t-1"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("comet-sync/")


def test_per_call_timeout_override(server, make_client) -> None:
    client = make_client(timeout=30, max_retries=0)
    server.delay_next(1.0)
    with pytest.raises(APITimeoutError):
        client.chat.completions.create(model="m", messages=user("b"), timeout=0.1)
    server.delay_next(0.2)
    client.chat.completions.create(model="m", messages=user("c"), timeout=(1.0, 5.0))


def test_timeout_forms() -> None:
    assert Timeout.coerce(5) == Timeout(5.0, 5.0)
    assert Timeout.coerce((1, 2)) == Timeout(1.0, 2.0)
    t = Timeout(connect=2, read=9)
    assert Timeout.coerce(t) is t


def test_submit_returns_a_future(client) -> None:
    future = client.chat.completions.submit(model="m", messages=user("d"), max_retries=0)
    assert future.result(timeout=10).choices[0].message.content == "echo: d"


def test_close_and_context_manager(server) -> None:
    with CometClient(api_key="k", base_url=server.base_url) as client:
        future = client.chat.completions.submit(model="m", messages=user("e"))
        # close() cancels what is not finished: results are taken inside the block.
        assert future.result().choices[0].message.content == "echo: e"
    assert client.closed
    assert "closed" in repr(client)
    with pytest.raises(ClientClosedError):
        client.chat.completions.create(model="m", messages=user("f"))
    with pytest.raises(ClientClosedError):
        client.chat.completions.submit(model="m", messages=user("f"))
    with pytest.raises(ClientClosedError):
        client.chat.completions.map([])
    client.close()  # twice is fine
    assert server.stats().requests == 1


def test_repr_shows_no_key(server) -> None:
    client = CometClient(api_key="sk-abcdef123456", base_url=server.base_url)
    assert "sk-abcdef123456" not in repr(client)
    assert "sk-abcdef123456" not in repr(client.config)
    client.close()


def test_a_netrc_entry_never_replaces_the_key(server, make_client, tmp_path, monkeypatch) -> None:
    # requests.Session.request would read ~/.netrc on every call and let an entry for the
    # host replace our Authorization header; the environment is read once, without .netrc.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = make_client()
    client.chat.completions.create(model="m", messages=user("netrc"))
    assert server.received[-1].headers["Authorization"] == f"Bearer {SECRET}"


def test_the_proxy_environment_is_read_when_the_client_is_built(
    server, make_client, monkeypatch
) -> None:
    # A proxy set after the client is built is not used (read once, for the base URL); one
    # set before is: a dead proxy makes the call fail to connect.
    client = make_client(max_retries=0)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client.chat.completions.create(model="m", messages=user("direct"))
    proxied = make_client(max_retries=0)
    with pytest.raises(APIConnectionError):
        proxied.chat.completions.create(model="m", messages=user("via proxy"))
    assert "via proxy" not in server.stats().attempts  # it never reached the server
