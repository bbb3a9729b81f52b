"""Code written for openai-python ports by swapping the constructor: the idioms, one by one,
against the fake server; and, where openai-python is installed (the ``bench`` extra), one user
script run against both clients in the same test."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any, Optional

import pytest

import comet_sync
from comet_sync import NOT_GIVEN, CometClient, InvalidArgumentError, Timeout
from comet_sync.testing import FakeCometServer

from .conftest import SECRET, user


def test_a_reply_message_goes_back_into_messages(server, client) -> None:
    messages: list[Any] = user("first")
    reply = client.chat.completions.create(model="m", messages=messages)
    messages.append(reply.choices[0].message)  # the tool-loop idiom
    messages.append({"role": "user", "content": "second"})
    client.chat.completions.create(model="m", messages=messages)
    sent = server.received[-1].body["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["content"] == "echo: first"
    assert sent[1] == reply.choices[0].message.to_dict()  # the message as it came


def test_not_given_values_are_left_out(server, client) -> None:
    class NotGiven:  # openai-python's sentinel, recognised by its class name
        def __bool__(self) -> bool:
            return False

    client.chat.completions.create(
        model="m", messages=user("x"), temperature=NOT_GIVEN, top_p=NotGiven(), max_tokens=5
    )
    body = server.received[-1].body
    assert "temperature" not in body and "top_p" not in body and body["max_tokens"] == 5
    assert pickle.loads(pickle.dumps(NOT_GIVEN)) is NOT_GIVEN and not NOT_GIVEN


def test_a_pydantic_model_as_response_format_is_pointed_to_a_schema(server, client) -> None:
    class Answer:  # what pydantic's BaseModel looks like to us
        @classmethod
        def model_json_schema(cls) -> dict[str, Any]:
            return {"type": "object"}

    with pytest.raises(InvalidArgumentError) as caught:
        client.chat.completions.create(model="m", messages=user("x"), response_format=Answer)
    assert caught.value.argument == "response_format" and "json_schema" in str(caught.value)
    assert server.stats().requests == 0


def test_extra_query_goes_to_the_query_string(server, make_client) -> None:
    client = make_client(
        default_query={"api-version": "2024-06-01"}, default_headers={"X-Team": "a"}
    )
    client.chat.completions.create(
        model="m", messages=user("x"), extra_query={"trace": "1"}, extra_headers={"X-Call": "b"}
    )
    received = server.received[-1]
    assert received.query == "api-version=2024-06-01&trace=1"
    assert "trace" not in received.body  # never a body field
    assert received.headers["X-Team"] == "a" and received.headers["X-Call"] == "b"


def test_with_options_shares_the_pool_limiter_and_metrics(server, make_client) -> None:
    client = make_client(max_retries=5)
    view = client.with_options(max_retries=0, timeout=30, default_headers={"X-View": "1"})
    server.fail(503)
    with pytest.raises(comet_sync.InternalServerError) as caught:
        view.chat.completions.create(model="m", messages=user("x"))
    assert caught.value.attempts == 1  # the view's max_retries
    assert server.received[-1].headers["X-View"] == "1"
    client.chat.completions.create(model="m", messages=user("y"))
    assert "X-View" not in server.received[-1].headers  # the parent's own defaults
    assert view.metrics is client.metrics and view._limiter is client._limiter
    assert sum(s.calls for s in client.metrics.snapshot().values()) == 2
    view.close()
    assert client.closed


def test_a_view_sends_its_options_on_every_route(server, make_client) -> None:
    client = make_client(default_headers={"X-Team": "a"})
    view = client.with_options(default_headers={"X-View": "1"}, default_query={"v": "2"})
    view.chat.completions.create(model="m", messages=user("create"))
    view.chat.completions.submit(model="m", messages=user("submit")).result(timeout=30)
    list(view.chat.completions.map([{"model": "m", "messages": user("map")}]))
    view.responses.create(model="gpt-5", input="responses")
    view.embeddings.create(model="e", input="embeddings")
    view.models.list()
    view.with_raw_response.chat.completions.create(model="m", messages=user("raw"))
    view.embeddings.with_raw_response.create(model="e", input="raw embeddings")
    sent = server.received
    assert [r.path.removeprefix("/v1") for r in sent] == [
        "/chat/completions",
        "/chat/completions",
        "/chat/completions",
        "/responses",
        "/embeddings",
        "/models",
        "/chat/completions",
        "/embeddings",
    ]
    for request in sent:
        assert request.headers.get("X-View") == "1", request.path
        assert request.headers.get("X-Team") == "a", request.path  # the parent's, kept
        assert request.query == "v=2", request.path
    assert view.models.retrieve("gpt-4o").id == "gpt-4o"  # from the view's cached list
    assert len(server.received) == len(sent)
    assert view.models is not client.models


def test_a_views_retries_and_timeouts_apply_to_the_models_list(server, make_client) -> None:
    client = make_client(max_retries=5)
    view = client.with_options(max_retries=0)
    server.fail(503)
    with pytest.raises(comet_sync.InternalServerError) as caught:
        view.models.list()
    assert caught.value.attempts == 1  # the view's max_retries, not the parent's five


def test_views_share_the_models_cache_of_what_they_send(server, make_client) -> None:
    """A view made per request costs no /models call of its own, unless what it sends (its
    headers, its query) may change the answer: then it has its own entry."""
    client = make_client()

    def asked() -> int:
        return len([r for r in server.received if r.path == "/v1/models"])

    client.models.list()
    client.with_options(timeout=5, max_retries=1).models.list()
    assert asked() == 1
    client.with_options(default_headers={"X-Tenant": "b"}).models.list()
    assert asked() == 2 and server.received[-1].headers["X-Tenant"] == "b"
    client.with_options(default_headers={"x-tenant": "b"}).models.list()  # a new view, same
    client.models.list()
    assert asked() == 2
    client.with_options(default_query={"tenant": "c"}).models.list()
    assert asked() == 3
    client.with_options(default_headers={"X-Tenant": "b"}).models.list(refresh=True)
    assert asked() == 4


@pytest.mark.parametrize("timeout", [None, Timeout(connect=5, read=None)])
def test_timeout_none_means_no_timeout(server, make_client, timeout: Any) -> None:
    client = make_client()
    reply = client.chat.completions.create(model="m", messages=user("x"), timeout=timeout)
    assert reply.choices[0].message.content == "echo: x"


def test_an_httpx_style_timeout_object_is_accepted(server, make_client) -> None:
    class HttpxTimeout:
        connect, read, write, pool = 5.0, 60.0, 60.0, 5.0

    client = make_client(timeout=HttpxTimeout())
    assert client.config.timeout == Timeout(connect=5.0, read=60.0)


def test_responses_dump_like_pydantic_models(server, client) -> None:
    reply = client.chat.completions.create(model="m", messages=user("x"))
    dumped = reply.model_dump()
    # As pydantic dumps openai's: a declared field the server left out is there, as None;
    # to_dict() is the JSON as sent (exclude_unset=True).
    assert dumped["service_tier"] is None and "service_tier" not in reply.to_dict()
    assert reply.model_dump(exclude_unset=True) == reply.to_dict()
    assert reply.to_dict() is not reply.to_dict()
    assert json.loads(reply.model_dump_json()) == dumped
    with pytest.raises(TypeError):
        reply.model_dump(exclude_nones=True)  # type: ignore[call-arg]  # a typo is no no-op
    with pytest.raises(ValueError):
        reply.model_dump(mode="yaml")


def test_models_list_is_a_list_and_a_page(server, client) -> None:
    page = client.models.list()
    assert page.data is page and [m.id for m in page] == [m.id for m in page.data]


def test_exceptions_carry_openai_attributes(server, client) -> None:
    server.respond_next(
        {
            "error": {
                "message": "bad temperature",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "invalid_value",
            }
        },
        status=400,
    )
    with pytest.raises(comet_sync.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=user("x"))
    exc = caught.value
    assert (exc.type, exc.param, exc.code) == (
        "invalid_request_error",
        "temperature",
        "invalid_value",
    )
    # openai-python's body: the error object, not the document around it.
    assert exc.message and exc.body["param"] == "temperature"
    assert exc.body["message"] == "bad temperature"
    assert exc.response.status_code == 400


def test_one_attempt_is_one_attempt(server, make_client) -> None:
    client = make_client(max_retries=0)
    server.fail(503)
    with pytest.raises(comet_sync.InternalServerError, match=r"1 attempt made"):
        client.chat.completions.create(model="m", messages=user("x"))


# -- the same script against both clients --------------------------------------------------------


def user_script(client: Any) -> dict[str, Any]:
    """What a user of openai-python writes; run unchanged against either client."""
    messages: list[Any] = [{"role": "user", "content": "hello"}]
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0.2, extra_query={"trace": "1"}
    )
    messages.append(reply.choices[0].message)
    messages.append({"role": "user", "content": "again"})
    second = client.with_options(max_retries=1, timeout=30).chat.completions.create(
        model="gpt-4o-mini", messages=messages
    )
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True
    ) as stream:
        streamed = "".join(
            chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
        )
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hi")
    models = [m.id for m in client.models.list().data]
    return {
        "first": reply.choices[0].message.content,
        "second": second.model_dump()["choices"][0]["message"]["content"],
        "streamed": streamed,
        "dims": len(embedding.data[0].embedding),
        "models": models,
    }


@pytest.mark.slow
def test_the_same_script_runs_on_openai_python_and_comet_sync() -> None:
    openai = pytest.importorskip("openai")  # the bench extra
    with FakeCometServer() as server:
        theirs = user_script(openai.OpenAI(api_key=SECRET, base_url=server.base_url))
        with CometClient(api_key=SECRET, base_url=server.base_url) as ours:
            mine = user_script(ours)
    assert mine == theirs


def test_with_raw_response_gives_the_head_and_the_parsed_answer(server, client) -> None:
    raw = client.chat.completions.with_raw_response.create(model="m", messages=user("x"))
    assert raw.status_code == 200 and raw.request_id and raw.headers["content-type"]
    assert raw.parse().choices[0].message.content == "echo: x"
    also = client.with_raw_response.chat.completions.create(model="m", messages=user("y"))
    assert also.parse().choices[0].message.content == "echo: y"
    assert also.request_id != raw.request_id
    stream = client.with_raw_response.chat.completions.create(
        model="m", messages=user("z"), stream=True
    )
    assert "text/event-stream" in stream.headers["content-type"]
    assert "".join(stream.parse().text_deltas()) == "echo: z"
    emb = client.embeddings.with_raw_response.create(model="e", input="hi")
    assert emb.parse().data[0].embedding and emb.status_code == 200


def test_submit_and_map_refuse_to_stream_before_sending(server, client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.chat.completions.submit(model="m", messages=user("x"), stream=True)
    assert caught.value.argument == "stream"
    [result] = client.chat.completions.map(
        [{"model": "m", "messages": user("x"), "stream": True}], return_exceptions=True
    )
    assert isinstance(result, InvalidArgumentError) and result.argument == "stream"
    assert server.stats().requests == 0


# -- the same lines under both clients, one idiom at a time ------------------------------------


def under_both(script: Any, **server_knobs: Any) -> tuple[Any, Any]:
    """``script(client, errors, server)`` run under openai-python, then under comet_sync,
    against one fake server (one address: URLs compare equal), with ``errors`` the module its
    exceptions come from: the two results, openai's first. Skipped where openai-python is not
    installed (the bench extra)."""
    openai = pytest.importorskip("openai")
    with FakeCometServer(**server_knobs) as server:
        theirs = script(
            openai.OpenAI(api_key=SECRET, base_url=server.base_url, max_retries=0),
            openai,
            server,
        )
        with CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0) as ours:
            mine = script(ours, comet_sync, server)
    return theirs, mine


# Error bodies as servers send them: OpenAI's, CometAPI's (empty param and code), unwrapped,
# a bare string under "error", a null error, JSON that is no object, and an HTML page.
ERROR_BODIES: list[tuple[int, Any, str | None]] = [
    (
        400,
        {
            "error": {
                "message": "bad temperature",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "invalid_value",
            }
        },
        None,
    ),
    (
        401,
        {"error": {"message": "invalid token", "type": "comet_api_error", "param": "", "code": ""}},
        None,
    ),
    (422, {"message": "unwrapped", "type": "t", "code": 42, "param": None}, None),
    (403, {"error": "a bare string"}, None),
    (404, {"error": None, "detail": "x"}, None),
    (400, [1, 2], None),
    (400, '"just a JSON string"', "application/json"),
    (404, "<html><h1>404 Not Found</h1></html>\n", None),
    (400, {"error": {"message": "numbers", "code": 0, "param": 7, "type": 3}}, None),
]


def error_script(client: Any, errors: Any, server: Any) -> list[dict[str, Any]]:
    seen = []
    for status, body, content_type in ERROR_BODIES:
        server.respond_next(body, status=status, content_type=content_type)
        try:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], extra_query={"q": "1"}
            )
        except errors.APIStatusError as e:
            seen.append(
                {
                    "class": type(e).__name__,
                    "status": e.status_code,
                    "body": e.body,
                    "code": e.code,
                    "param": e.param,
                    "type": e.type,
                    "method": e.request.method,
                    "url": str(e.request.url),
                    "message": e.body["message"] if isinstance(e.body, dict) else None,
                }
            )
    return seen


@pytest.mark.slow
def test_exceptions_carry_what_openai_puts_on_them() -> None:
    theirs, mine = under_both(error_script)
    assert len(theirs) == len(ERROR_BODIES)
    assert mine == theirs


@pytest.mark.slow
def test_an_error_inside_a_stream_carries_what_openai_puts_on_it() -> None:
    def script(client: Any, errors: Any, server: Any) -> dict[str, Any]:
        server.fail(200, stream_error_after=1)
        with pytest.raises(errors.APIError) as caught:
            for _ in client.chat.completions.create(model="m", messages=user("x"), stream=True):
                pass
        e = caught.value
        # (the request id in the message differs: one server, two calls)
        message = e.body["message"].split(" (request id")[0]
        return {
            "body": {**e.body, "message": message},
            "code": e.code,
            "param": e.param,
            "type": e.type,
            "method": e.request.method,
            "url": str(e.request.url),
        }

    theirs, mine = under_both(script)
    assert mine == theirs


def test_an_exceptions_request_is_its_method_and_url_only(server, make_client) -> None:
    client = make_client(max_retries=0, default_query={"v": "1"})
    server.fail(400, message="no")
    with pytest.raises(comet_sync.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=user("a secret prompt"))
    request = caught.value.request
    assert (request.method, request.url) == ("POST", f"{server.base_url}/chat/completions?v=1")
    kept = pickle.dumps(caught.value)
    assert SECRET.encode() not in kept and b"a secret prompt" not in kept
    assert b"Authorization" not in kept
    assert pickle.loads(kept).request == request
    # Errors that got no answer name their request too.
    dead = make_client(base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(comet_sync.APIConnectionError) as refused:
        dead.models.list()
    assert (refused.value.request.method, refused.value.request.url) == (
        "GET",
        "http://127.0.0.1:9/v1/models",
    )


# What differs by call on one server (ids, timestamps) is left out of what is compared.
VARYING = {"id", "created", "created_at"}


def dump_script(client: Any, errors: Any, server: Any) -> dict[str, Any]:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    choice, usage = reply.choices[0], reply.usage
    copied = reply.model_copy(update={"model": "other"})
    deep = reply.model_copy(deep=True)
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hi")
    model = client.models.list().data[0]
    response = client.responses.create(model="gpt-5", input="hi")
    return {
        "dump": reply.model_dump(exclude=VARYING),
        "unset": reply.model_dump(exclude_unset=True, exclude=VARYING),
        "none": reply.model_dump(exclude_none=True, exclude=VARYING),
        "defaults": reply.model_dump(exclude_defaults=True, exclude=VARYING),
        "json": json.loads(reply.model_dump_json(exclude=VARYING)),
        "json_unset": json.loads(reply.model_dump_json(exclude_unset=True, exclude=VARYING)),
        "json_none": json.loads(reply.model_dump_json(exclude_none=True, exclude=VARYING)),
        "compact": ", " not in reply.model_dump_json() and "\n" not in reply.model_dump_json(),
        "indented": reply.model_dump_json(indent=2).startswith('{\n  "'),
        "to_dict": {k: v for k, v in reply.to_dict().items() if k not in VARYING},
        "to_dict_none": reply.to_dict(exclude_none=True)["choices"],
        "to_json": {k: v for k, v in json.loads(reply.to_json()).items() if k not in VARYING},
        "to_json_indent": reply.to_json().startswith('{\n  "'),
        "to_json_flat": "\n" not in reply.to_json(indent=None),
        "include": reply.model_dump(include={"model", "usage"}),
        "nested": reply.model_dump(
            exclude_unset=True, include={"choices": {"__all__": {"message": {"content"}}}}
        ),
        "nested_exclude": reply.model_dump(
            exclude_unset=True,
            exclude={"choices": {0: {"message"}}, **dict.fromkeys(VARYING, True)},
        ),
        "absent": [
            reply.service_tier,
            reply.system_fingerprint,
            choice.logprobs,
            usage.prompt_tokens_details,
            usage.completion_tokens_details,
            choice.message.annotations,
            choice.message.audio,
            choice.message.function_call,
            choice.message.tool_calls,
        ],
        "fields_set": [
            sorted(reply.model_fields_set),
            sorted(choice.model_fields_set),
            sorted(choice.message.model_fields_set),
            sorted(usage.model_fields_set),
            sorted(model.model_fields_set),
        ],
        "copy": [
            copied.model,
            reply.model,
            copied.choices == reply.choices,
            "model" in copied.model_fields_set,
        ],
        "deep": deep.model_dump() == reply.model_dump(),
        "chunks": [c.model_dump(exclude=VARYING) for c in chunks],
        "chunks_unset": [c.model_dump(exclude=VARYING, exclude_unset=True) for c in chunks],
        "embedding": embedding.model_dump(),
        "model": model.model_dump(),
        "model_none": model.model_dump(exclude_none=True),
        "response": response.model_dump(
            exclude_unset=True,
            exclude={"id": True, "created_at": True, "output": {"__all__": {"id"}}},
        ),
        "response_none": response.model_dump(
            exclude_none=True, exclude={"id": True, "created_at": True, "output": True}
        ),
        "response_absent": [response.service_tier, response.error, response.previous_response_id],
    }


@pytest.mark.slow
def test_response_objects_dump_and_copy_as_openai_does() -> None:
    theirs, mine = under_both(dump_script)
    for key in theirs:
        if key in FILLED:
            assert _declared_alike(mine[key], theirs[key]) == theirs[key], key
        else:
            assert mine[key] == theirs[key], key
    assert theirs["compact"] and theirs["indented"] and theirs["to_json_indent"]


# The dumps that fill in unset fields: which are declared depends on openai's version.
FILLED = {"dump", "json", "defaults", "chunks", "embedding", "model"}


def _declared_alike(mine: Any, theirs: Any) -> Any:
    """``mine`` less the None-filled fields the installed openai-python does not declare (the
    bench extra takes any 1.x or later: each declares a few fields more than the last), at
    every level. A value, or a field openai fills and we do not, still differs."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return {
            key: _declared_alike(value, theirs.get(key))
            for key, value in mine.items()
            if key in theirs or value is not None
        }
    if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
        return [_declared_alike(m, t) for m, t in zip(mine, theirs)]
    return mine


TOOL_REPLY = {
    "id": "chatcmpl-tools",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
        }
    ],
}


@pytest.mark.slow
def test_a_tool_call_reads_as_openai_reads_it() -> None:
    def script(client: Any, errors: Any, server: Any) -> dict[str, Any]:
        server.respond_next(TOOL_REPLY)
        reply = client.chat.completions.create(model="m", messages=user("weather?"))
        tc = reply.choices[0].message.tool_calls[0]
        return {
            "args": json.loads(tc.function.arguments),
            "id": tc.id,
            "name": tc.function.name,
            "dump": tc.model_dump(),
            "message": reply.choices[0].message.model_dump(exclude_none=True),
            "absent": [reply.usage, reply.choices[0].logprobs],
        }

    theirs, mine = under_both(script)
    assert mine == theirs


@pytest.mark.slow
def test_openai_retrieves_one_model_from_the_fake_server() -> None:
    """openai-python's ``models.retrieve`` sends ``GET /models/{id}``: the fake server answers
    it, and an unknown id as OpenAI does (404, ``model_not_found``)."""

    def script(client: Any, errors: Any, server: Any) -> dict[str, Any]:
        with pytest.raises(errors.NotFoundError) as caught:
            client.models.retrieve("no-such-model")
        return {
            "known": client.models.retrieve("gpt-4o").model_dump(),
            "unknown": [caught.value.status_code, caught.value.code, caught.value.body["code"]],
        }

    openai = pytest.importorskip("openai")
    with FakeCometServer() as server:
        theirs = script(
            openai.OpenAI(api_key=SECRET, base_url=server.base_url, max_retries=0), openai, server
        )
    assert theirs["known"]["id"] == "gpt-4o"
    assert theirs["unknown"] == [404, "model_not_found", "model_not_found"]


# -- parse(): tools, cut replies, invalid content, the beta path -----------------------------------


def _reply(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-parse",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def _tool_reply(name: str, arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return _reply({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")


LOOKUP_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
            "additionalProperties": False,
        },
    },
}


def parse_script(client: Any, lib: Any, server: FakeCometServer) -> dict[str, Any]:
    """parse() as openai-python users write it; ``lib`` is the module the exceptions come
    from (openai, or comet_sync: the one import a port changes)."""
    import openai  # the script uses openai's own tool helper under both clients
    import pydantic

    class GetWeather(pydantic.BaseModel):
        city: str
        days: int

    class Capital(pydantic.BaseModel):
        city: str
        country: str

    out: dict[str, Any] = {}
    messages = [{"role": "user", "content": "weather in Rome?"}]

    server.respond_next(_tool_reply("GetWeather", '{"city": "Rome", "days": 3}'))
    done = client.chat.completions.parse(
        model="gpt-4o-mini", messages=messages, tools=[openai.pydantic_function_tool(GetWeather)]
    )
    message = done.choices[0].message
    call = message.tool_calls[0]
    out["tool"] = (
        type(call.function.parsed_arguments).__name__,
        call.function.parsed_arguments.model_dump(),
        call.function.name,
        call.id,
        message.parsed,
    )
    out["tools_sent"] = server.received[-1].body["tools"]
    assert "response_format" not in server.received[-1].body

    server.respond_next(_tool_reply("lookup", '{"q": "rome"}'))
    done = client.chat.completions.parse(
        model="gpt-4o-mini", messages=messages, tools=[LOOKUP_TOOL]
    )
    out["strict_dict_tool"] = done.choices[0].message.tool_calls[0].function.parsed_arguments

    for reason, name in (
        ("length", "LengthFinishReasonError"),
        ("content_filter", "ContentFilterFinishReasonError"),
    ):
        server.respond_next(_reply({"role": "assistant", "content": '{"city": "Ro'}, reason))
        try:
            client.chat.completions.parse(
                model="gpt-4o-mini", messages=messages, response_format=Capital
            )
        except getattr(lib, name) as exc:
            out[reason] = (
                type(exc).__name__,
                str(exc)[:60],
                exc.completion.choices[0].finish_reason,
            )

    server.respond_next(_reply({"role": "assistant", "content": "not json"}))
    try:
        client.chat.completions.parse(
            model="gpt-4o-mini", messages=messages, response_format=Capital
        )
    except pydantic.ValidationError as exc:
        out["invalid"] = [error["type"] for error in exc.errors()]

    server.respond_next(
        _reply({"role": "assistant", "content": '{"city": "Rome", "country": "IT"}'})
    )
    parsed = client.beta.chat.completions.parse(
        model="gpt-4o-mini", messages=messages, response_format=Capital
    )
    out["beta"] = parsed.choices[0].message.parsed.model_dump()
    out["format_sent"] = server.received[-1].body["response_format"]
    return out


@pytest.mark.slow
def test_parse_runs_the_same_on_openai_python_and_comet_sync() -> None:
    openai = pytest.importorskip("openai")
    pytest.importorskip("pydantic")
    with FakeCometServer() as server:
        theirs = parse_script(
            openai.OpenAI(api_key=SECRET, base_url=server.base_url), openai, server
        )
        with CometClient(api_key=SECRET, base_url=server.base_url) as ours:
            mine = parse_script(ours, comet_sync, server)
            # Not a copy that could drift: the very method (openai-python has two).
            assert ours.beta.chat.completions.parse == ours.chat.completions.parse
    assert set(theirs) == {
        "tool",
        "tools_sent",
        "strict_dict_tool",
        "length",
        "content_filter",
        "invalid",
        "beta",
        "format_sent",
    }
    assert mine == theirs


def test_parse_refuses_a_tool_it_could_not_parse_before_sending(server, client) -> None:
    loose = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    for tools, argument in (
        ([LOOKUP_TOOL, loose], "tools[1].function.strict"),
        ([{"type": "custom", "custom": {"name": "c"}}], "tools[0]"),
        ("lookup", "tools"),
    ):
        with pytest.raises(InvalidArgumentError) as caught:
            client.chat.completions.parse(model="m", messages=user("x"), tools=tools)
        assert caught.value.argument == argument
        assert isinstance(caught.value, ValueError)  # what openai-python raises
    assert server.stats().requests == 0


def test_our_pydantic_function_tool_is_openais_and_parses_calls(server, client) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Inner(pydantic.BaseModel):
        a: int

    class Lookup(pydantic.BaseModel):
        """Look something up."""

        q: str
        limit: Optional[int] = None  # noqa: UP045  (pydantic evaluates it, on 3.9 too)
        inner: Inner = pydantic.Field(description="described beside a $ref")
        more: list[Inner]

    tool = comet_sync.pydantic_function_tool(Lookup)
    openai = pytest.importorskip("openai")
    assert tool == openai.pydantic_function_tool(Lookup)  # the same schema on the wire
    server.respond_next(
        _tool_reply("Lookup", '{"q": "x", "limit": null, "inner": {"a": 1}, "more": []}')
    )
    generator_of_tools = (t for t in [tool])  # read once, and sent
    reply = client.chat.completions.parse(model="m", messages=user("x"), tools=generator_of_tools)
    assert server.received[-1].body["tools"] == [tool]
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == Lookup(q="x", inner=Inner(a=1), more=[])
    copied = copy.deepcopy(reply)  # an agent's copied history (a local class: no pickle)
    assert copied.choices[0].message.tool_calls[0].function.parsed_arguments == Lookup(
        q="x", inner=Inner(a=1), more=[]
    )
    server.respond_next(_tool_reply("Lookup", '{"q": 1}'))
    with pytest.raises(pydantic.ValidationError):
        client.chat.completions.parse(model="m", messages=user("x"), tools=[tool])
    server.respond_next(_tool_reply("unknown", "{}"))
    reply = client.chat.completions.parse(model="m", messages=user("x"), tools=[tool])
    assert reply.choices[0].message.tool_calls[0].function.parsed_arguments is None


def test_a_reply_the_model_did_not_finish_raises_openais_errors(server, client) -> None:
    for reason, error in (
        ("length", comet_sync.LengthFinishReasonError),
        ("content_filter", comet_sync.ContentFilterFinishReasonError),
    ):
        server.respond_next(_reply({"role": "assistant", "content": '{"a": '}, reason))
        with pytest.raises(error) as caught:
            client.chat.completions.parse(
                model="m", messages=user("x"), response_format={"type": "json_object"}
            )
        assert caught.value.completion.choices[0].finish_reason == reason
        again = pickle.loads(pickle.dumps(caught.value))  # Celery sends exceptions on
        assert again.completion == caught.value.completion and str(again) == str(caught.value)
        assert SECRET not in repr(again.__dict__)


# -- the client's surface: settings read back, copies, views with another key, raw heads ---------

OTHER_KEY = "sk-other-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _auth(server: FakeCometServer) -> str:
    """The Authorization header of the last request (names in any case)."""
    headers = {name.lower(): value for name, value in server.received[-1].headers.items()}
    return headers["authorization"]


def surface_script(client: Any, main: FakeCometServer, other: FakeCometServer) -> dict[str, Any]:
    """What openai-python users write around the client itself."""
    import openai  # for its Timeout (httpx's), as user code passes it

    messages = [{"role": "user", "content": "hello"}]
    out: dict[str, Any] = {
        "base_url": str(client.base_url),
        "max_retries": client.max_retries,
        "timeout": (client.timeout.connect, client.timeout.read),
    }
    view = client.with_options(max_retries=1, timeout=openai.Timeout(20.0, connect=3.0))
    out["view"] = (view.max_retries, view.timeout.connect, view.timeout.read, str(view.base_url))
    copied = client.copy(max_retries=4)
    out["copy"] = (copied.max_retries, str(copied.base_url))
    keyed = client.with_options(api_key=OTHER_KEY, base_url=other.base_url)
    before = len(other.received)
    reply = keyed.chat.completions.create(model="gpt-4o-mini", messages=messages)
    out["keyed"] = (str(keyed.base_url), reply.choices[0].message.content)
    out["keyed_sent"] = (_auth(other), len(other.received) - before)
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # still its own
    out["own_sent"] = _auth(main)
    create = client.chat.completions.with_streaming_response.create
    with create(model="gpt-4o-mini", messages=messages) as response:
        out["head"] = (response.status_code, response.headers["content-type"].split(";")[0])
        out["body"] = response.parse().choices[0].message.content
    with create(model="gpt-4o-mini", messages=messages, stream=True) as response:
        out["stream_head"] = response.headers["content-type"].split(";")[0]
        out["streamed"] = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    raw = client.models.with_raw_response.list()
    out["models"] = (raw.status_code, [m.id for m in raw.parse().data])
    raw = client.chat.with_raw_response.completions.create(model="m", messages=messages)
    out["chat_raw"] = raw.parse().choices[0].message.content
    with client.models.with_streaming_response.list() as response:
        out["models_streaming"] = [m.id for m in response.parse().data]
    return out


@pytest.mark.slow
def test_the_client_surface_is_the_same_on_openai_python_and_comet_sync() -> None:
    openai = pytest.importorskip("openai")
    results = []
    with FakeCometServer(api_key=SECRET) as main, FakeCometServer(api_key=OTHER_KEY) as other:
        for make in (openai.OpenAI, CometClient):
            client = make(
                api_key=SECRET,
                base_url=main.base_url,
                max_retries=3,
                timeout=openai.Timeout(30.0, connect=5.0),
            )
            try:
                results.append(surface_script(client, main, other))
            finally:
                client.close()
    theirs, mine = results
    assert theirs["base_url"].endswith("/v1/")  # str(httpx.URL): a trailing slash
    assert theirs["keyed_sent"] == (f"Bearer {OTHER_KEY}", 1)
    assert mine == theirs


@pytest.fixture
def other_server() -> Any:
    with FakeCometServer(api_key=OTHER_KEY) as other:
        yield other


def test_a_view_with_another_key_shares_nothing_keyed(server, other_server, make_client) -> None:
    records: list[Any] = []
    client = make_client(cache=comet_sync.ResponseCache(), on_request=records.append)
    client.chat.completions.create(model="m", messages=user("same"))
    for text in ("same", "second", "same"):  # a view per request, as for a tenant
        view = client.with_options(api_key=OTHER_KEY, base_url=other_server.base_url)
        view.chat.completions.create(model="m", messages=user(text))
    # "same" was not served from the parent's cache, and then was from the key's own.
    assert other_server.stats().requests == 2
    assert other_server.stats().connections_opened == 1  # one pool for the key, kept
    assert {_auth(other_server)} == {f"Bearer {OTHER_KEY}"}
    assert {r.headers.get("Authorization") for r in server.received} == {f"Bearer {SECRET}"}
    assert view.metrics is not client.metrics and view._limiter is not client._limiter
    assert sum(s.calls for s in client.metrics.snapshot().values()) == 1
    assert sum(s.calls for s in view.metrics.snapshot().values()) == 3
    assert len(records) == 4 and OTHER_KEY not in repr(records) and SECRET not in repr(records)
    for shown in (repr(view), repr(client), str(view.base_url), repr(view.__dict__)):
        assert OTHER_KEY not in shown and SECRET not in shown
    again = view.with_options(max_retries=0)  # a view of the view keeps its key
    again.chat.completions.create(model="m", messages=user("again"))
    assert _auth(other_server) == f"Bearer {OTHER_KEY}" and again.max_retries == 0
    back = view.with_options(api_key=SECRET, base_url=server.base_url)
    assert back._parent is client  # the owner's own runtime again


def test_closing_either_closes_every_view_whatever_its_key(server, other_server, make_client):
    client = make_client()
    keyed = client.with_options(api_key=OTHER_KEY, base_url=other_server.base_url)
    keyed.chat.completions.create(model="m", messages=user("x"))
    keyed.close()
    assert client.closed and keyed.closed
    with pytest.raises(comet_sync.ClientClosedError):
        keyed.chat.completions.create(model="m", messages=user("x"))
    with pytest.raises(comet_sync.ClientClosedError):
        client.with_options(api_key=OTHER_KEY).chat.completions.create(
            model="m", messages=user("x")
        )
    assert other_server.stats().requests == 1


def test_copy_is_with_options_and_wrong_options_fail_before_sending(server, make_client) -> None:
    client = make_client(default_headers={"X-Team": "a"})
    assert type(client).copy is type(client).with_options
    replaced = client.copy(set_default_headers={"X-Only": "1"})
    replaced.chat.completions.create(model="m", messages=user("x"))
    assert "X-Team" not in server.received[-1].headers
    assert server.received[-1].headers["X-Only"] == "1"
    for kwargs, argument in (
        ({"api_key": "sk bad key with spaces"}, "api_key"),
        ({"base_url": "http://user:pw@example.com/v1"}, "base_url"),
        ({"default_headers": {"a": "1"}, "set_default_headers": {"b": "2"}}, "set_default_headers"),
        ({"max_retries": -1}, "max_retries"),
    ):
        with pytest.raises(InvalidArgumentError) as caught:
            client.with_options(**kwargs)
        assert caught.value.argument == argument
        assert "sk bad key" not in str(caught.value)
    assert server.stats().requests == 1


def test_a_shared_limiter_is_not_lent_to_another_key(server, make_client) -> None:
    from comet_sync._rate.limiter import Limiter  # standing in for a RedisLimiter

    client = make_client(limiter=Limiter(4, comet_sync.RateControl()))
    assert client.with_options(max_retries=1)._limiter is client._limiter  # same key: fine
    with pytest.raises(InvalidArgumentError) as caught:
        client.with_options(api_key=OTHER_KEY)
    assert caught.value.argument == "api_key"


def test_a_client_refuses_to_be_pickled_before_writing_its_key(client, tmp_path) -> None:
    path = tmp_path / "client.pickle"
    for target in (client, client.with_options(api_key=OTHER_KEY)):
        with path.open("wb") as f, pytest.raises(TypeError) as caught:
            pickle.dump(target, f)
        assert (
            SECRET.encode() not in path.read_bytes() and OTHER_KEY.encode() not in path.read_bytes()
        )
        assert SECRET not in str(caught.value)
        with pytest.raises(TypeError):
            copy.deepcopy(target)


def test_the_settings_read_back(server, make_client) -> None:
    client = make_client(max_retries=2, timeout=(3, 40))
    assert client.base_url == server.base_url.rstrip("/") + "/"
    assert (client.max_retries, client.timeout) == (2, Timeout(connect=3, read=40))
    view = client.with_options(timeout=None, max_retries=NOT_GIVEN)
    assert (view.max_retries, view.timeout) == (2, Timeout(connect=None, read=None))


def test_with_streaming_response_sends_on_entering_and_gives_the_stream_back(server, client):
    manager = client.chat.completions.with_streaming_response.create(
        model="m", messages=user("hello there"), stream=True
    )
    assert server.stats().requests == 0  # nothing sent until the block is entered
    with manager as response:
        assert response.status_code == 200 and client.in_flight == 1
        assert "text/event-stream" in response.headers["content-type"]
        stream = response.parse()
        assert next(stream.text_deltas())  # read a little, not all
    assert client.in_flight == 0  # the block closed the stream it did not finish
    with client.with_streaming_response.chat.completions.create(
        model="m", messages=user("x")
    ) as response:
        assert response.parse().choices[0].message.content == "echo: x"
    with client.chat.completions.with_streaming_response.parse(
        model="m", messages=user("x"), response_format={"type": "text"}
    ) as response:
        assert response.parse().choices[0].message.parsed is None


def test_every_resource_has_both_wrappers(server, client) -> None:
    models = client.models.with_raw_response.list()
    assert models.status_code == 200 and models.headers["content-type"]
    cached = client.models.with_raw_response.list()  # from the models cache: no head
    assert cached.status_code == 200 and dict(cached.headers) == {}
    assert client.with_raw_response.models.retrieve("gpt-4o").parse().id == "gpt-4o"
    raw = client.with_raw_response.responses.create(model="gpt-5", input="hi")
    assert raw.status_code == 200 and raw.parse().output_text
    with client.embeddings.with_streaming_response.create(model="e", input="hi") as response:
        assert response.parse().data[0].embedding
    with client.with_streaming_response.models.list() as response:
        assert [m.id for m in response.parse()]
    with client.responses.with_streaming_response.create(
        model="gpt-5", input="hi", stream=True
    ) as response:
        assert "".join(response.parse().text_deltas())
    assert client.in_flight == 0


def test_views_past_the_kept_keys_still_work_and_close_with_the_client(server, make_client):
    from comet_sync._keyed import MAX_KEYED

    client = make_client()
    first = client.with_options(api_key="sk-tenant-0000000000000000")
    views = [client.with_options(api_key=f"sk-tenant-{i:016d}") for i in range(1, MAX_KEYED + 1)]
    first.chat.completions.create(model="m", messages=user("let go of, still usable"))
    assert _auth(server) == "Bearer sk-tenant-0000000000000000"
    assert len(client._keyed._entries) == MAX_KEYED and first._parent in client._keyed._let_go
    client.close()
    assert first.closed and all(view.closed for view in views)
    assert first._parent._closed  # closed with the client, not only refused


def test_a_runtime_let_go_of_ends_with_its_last_view(server, make_client) -> None:
    import gc
    import threading

    from comet_sync._keyed import MAX_KEYED

    client = make_client()
    first = client.with_options(api_key="sk-tenant-0000000000000000")
    first.chat.completions.create(model="m", messages=user("x"))  # starts its watchdog
    watchdogs = sum(t.name == "comet_sync-watchdog" for t in threading.enumerate())
    for i in range(1, MAX_KEYED + 1):  # the first is let go of
        client.with_options(api_key=f"sk-tenant-{i:016d}")
    del first
    gc.collect()
    for _ in range(100):
        if sum(t.name == "comet_sync-watchdog" for t in threading.enumerate()) < watchdogs:
            break
        threading.Event().wait(0.02)
    assert sum(t.name == "comet_sync-watchdog" for t in threading.enumerate()) == watchdogs - 1


@pytest.mark.slow
def test_close_waits_one_grace_for_every_key_at_once(server, make_client) -> None:
    import threading
    import time

    client = make_client(max_retries=0)
    views = [client.with_options(api_key=f"sk-tenant-{i:016d}") for i in range(3)]
    server.delay_next(10, times=3)
    errors: list[BaseException] = []

    def call(view: CometClient) -> None:
        try:
            view.chat.completions.create(model="m", messages=user("slow"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(view,)) for view in views]
    for thread in threads:
        thread.start()
    while sum(view.in_flight for view in views) < 3:
        time.sleep(0.01)
    started = time.monotonic()
    client.close(grace=1.0)
    took = time.monotonic() - started
    for thread in threads:
        thread.join(5)
    assert 1.0 <= took < 2.0, took  # one grace for all three, not one each
    assert len(errors) == 3
    assert all(isinstance(e, comet_sync.ClientClosedError) for e in errors)


def test_a_limiter_written_before_acquire_took_a_scope_still_serves(server, make_client) -> None:
    """``scope=`` was added to ``LimiterProtocol.acquire`` with a default: a user's limiter
    with the old signature is called without it, and its calls go through."""
    from comet_sync._rate.limiter import Limiter

    class OldLimiter:
        def __init__(self) -> None:
            self.inner = Limiter(4, comet_sync.RateControl())
            self.asked = 0

        def bind(self, *, clock: comet_sync.Clock, max_hold: float) -> None:
            self.inner.bind(clock=clock, max_hold=max_hold)

        def acquire(self, model=None, *, cost=0.0, timeout=None, retry_cost=0.0):
            self.asked += 1
            return self.inner.acquire(model, cost=cost, timeout=timeout, retry_cost=retry_cost)

        def paces_tokens(self, model: str | None) -> bool:
            return False

        @property
        def in_use(self) -> int:
            return self.inner.in_use

        def state(self) -> comet_sync.LimiterState:
            return self.inner.state()

        def after_fork(self) -> None:
            pass

    old = OldLimiter()
    client = make_client(limiter=old)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
    assert reply.choices and old.asked == 1
