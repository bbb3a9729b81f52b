"""Response objects pickle, copy and deep-copy to equal objects (Django's cache and Celery's
result backends pickle; agent frameworks deep-copy their message histories), also into
another process; a stream, which is a live connection, refuses with a reason."""

from __future__ import annotations

import copy
import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import pytest

import comet_sync
from comet_sync import APIObject, CometClient
from comet_sync.testing import FakeCometServer

from .conftest import user

try:
    import pydantic
except ImportError:  # the structured-output case is left out without it
    pydantic = None  # type: ignore[assignment]

if pydantic is not None:

    class Capital(pydantic.BaseModel):
        # At module level: a pickle names the class, and the child process imports it.
        city: str
        country: str


def _pickled(obj: Any, protocol: int = pickle.DEFAULT_PROTOCOL) -> Any:
    return pickle.loads(pickle.dumps(obj, protocol))


# Every way a user's code copies a result; protocol 2 is the oldest any backend still uses.
WAYS: dict[str, Callable[[Any], Any]] = {
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
    "pickle": _pickled,
    "pickle protocol 2": lambda obj: _pickled(obj, 2),
    "pickle highest": lambda obj: _pickled(obj, pickle.HIGHEST_PROTOCOL),
}

TOOL_REPLY = {
    "id": "chatcmpl-tools",
    "object": "chat.completion",
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
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


def _answers(server: FakeCometServer, client: CometClient) -> dict[str, Any]:
    """One of every response object, each as a real call over the fake server returns it."""
    found: dict[str, Any] = {}
    reply = client.chat.completions.create(model="m", messages=user("hello there"))
    found["chat completion"] = reply
    found["choice"] = reply.choices[0]
    found["message"] = reply.choices[0].message
    found["usage"] = reply.usage
    server.respond_next(TOOL_REPLY)
    tools = client.chat.completions.create(model="m", messages=user("weather?"))
    found["tool reply"] = tools
    found["tool call"] = tools.choices[0].message.tool_calls[0]
    found["function call"] = tools.choices[0].message.tool_calls[0].function
    with client.chat.completions.create(
        model="m", messages=user("stream me"), stream=True
    ) as stream:
        chunk = next(stream)
        found["chunk"] = chunk
        found["chunk choice"] = chunk.choices[0]
        found["delta"] = chunk.choices[0].delta
        found["streamed completion"] = stream.get_final_completion()
    embeddings = client.embeddings.create(model="e", input=["one", "two"])
    found["embeddings"] = embeddings
    found["embedding"] = embeddings.data[1]
    models = client.models.list()
    found["models list"] = models
    found["model"] = models[0]
    response = client.responses.create(model="gpt-5", input="say hello")
    found["response"] = response
    found["response usage"] = response.usage
    found["output item"] = response.output[0]  # a plain APIObject: a shape we do not name
    with client.responses.create(model="gpt-5", input="one two", stream=True) as events:
        found["response event"] = next(events)
        found["streamed response"] = events.get_final_response()
    if pydantic is not None:
        server.respond_next(
            {
                "id": "c1",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": json.dumps({"city": "Rome", "country": "Italy"}),
                        },
                    }
                ],
            }
        )
        parsed = client.chat.completions.parse(
            model="m", messages=user("capital?"), response_format=Capital
        )
        found["parsed completion"] = parsed
        found["parsed message"] = parsed.choices[0].message
    return found


def _same(original: Any, twin: Any) -> None:
    assert type(twin) is type(original)
    assert twin == original
    if isinstance(original, APIObject):
        assert twin.to_dict() == original.to_dict()
        assert repr(twin) == repr(original)


def _parsed_of(obj: Any) -> Any:
    if isinstance(obj, comet_sync.ChatCompletion):
        obj = obj.choices[0].message
    return obj.parsed


@pytest.mark.parametrize("way", list(WAYS))
def test_every_response_object_comes_back_equal(server, client, way: str) -> None:
    found = _answers(server, client)
    assert len(found) == (22 if pydantic is not None else 20)
    for name, original in found.items():
        try:
            twin = WAYS[way](original)
        except Exception as exc:
            pytest.fail(f"{way} of the {name}: {type(exc).__name__}: {exc}")
        _same(original, twin)
        if name.startswith("parsed"):
            # Set beside the JSON: it must come along, as the same class.
            assert isinstance(_parsed_of(twin), Capital)
            assert _parsed_of(twin) == _parsed_of(original)
    # A copy still reads like the original, nested views included.
    reply = WAYS[way](found["tool reply"])
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert WAYS[way](found["models list"]).data[0].id == found["model"].id
    assert WAYS[way](found["response"]).output_text == "echo: say hello"


def test_a_deep_copy_is_independent_and_a_copy_stays_read_only(server, client) -> None:
    reply = client.chat.completions.create(model="m", messages=user("x"))
    for twin in (copy.copy(reply), copy.deepcopy(reply), _pickled(reply)):
        with pytest.raises(AttributeError, match="read-only"):
            twin.id = "changed"
    deep = copy.deepcopy(reply)
    dumped = deep.to_dict()
    dumped["choices"].clear()
    assert deep == reply and len(deep.choices) == 1


def test_a_tool_loop_history_deep_copies_and_goes_back_out(server, client) -> None:
    server.respond_next(TOOL_REPLY)
    messages: list[Any] = user("weather in Rome?")
    reply = client.chat.completions.create(model="m", messages=messages)
    messages.append(reply.choices[0].message)
    messages.append({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    history = copy.deepcopy(messages)
    assert history == messages and history[1] is not messages[1]
    # The copy is accepted wherever the original is: the next call sends the same body.
    client.chat.completions.create(model="m", messages=history)
    sent_from_copy = server.received[-1].body["messages"]
    client.chat.completions.create(model="m", messages=messages)
    assert server.received[-1].body["messages"] == sent_from_copy
    assert sent_from_copy[1]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_the_raw_response_pickles_with_its_head(server, client) -> None:
    raw = client.chat.completions.with_raw_response.create(model="m", messages=user("x"))
    for way in WAYS.values():
        twin = way(raw)
        assert twin.status_code == raw.status_code == 200
        assert twin.request_id == raw.request_id and twin.request_id
        assert dict(twin.headers) == dict(raw.headers)
        assert twin.headers["content-type"] == raw.headers["Content-Type"]  # case-insensitive
        assert twin.http_response == raw.http_response
        _same(raw.parse(), twin.parse())


def test_fields_named_like_copy_hooks_do_not_hijack_copying(server, client) -> None:
    """A key the server chose is never taken for a protocol hook of the object."""
    body = {
        **TOOL_REPLY,
        "__deepcopy__": "x",
        "__copy__": "x",
        "__reduce_ex__": 1,
        "__getstate__": {"a": 1},
        "__setstate__": [1],
    }
    server.respond_next(body)
    reply = client.chat.completions.create(model="m", messages=user("x"))
    for way in WAYS.values():
        _same(reply, way(reply))
    assert reply["__deepcopy__"] == "x"  # still there to read, by key


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_a_stream_refuses_to_be_copied_or_pickled_and_says_why(server, client, kind) -> None:
    if kind == "chat":
        stream: Any = client.chat.completions.create(model="m", messages=user("x"), stream=True)
    else:
        stream = client.responses.create(model="gpt-5", input="x", stream=True)
    with stream:
        for way in WAYS.values():
            with pytest.raises(TypeError, match="live connection"):
                way(stream)
        # Refusing left it whole: it still reads to its end.
        final = stream.get_final_completion() if kind == "chat" else stream.get_final_response()
    assert final == _pickled(final)


def _in_child(objects: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Runs in a spawned process: what arrived, sent back, and what it read of each."""
    read = {}
    for name, obj in objects.items():
        if isinstance(obj, APIObject):
            read[name] = f"{type(obj).__name__} {json.dumps(obj.to_dict(), sort_keys=True)}"
        else:
            read[name] = type(obj).__name__
    return objects, read


@pytest.mark.slow
def test_objects_cross_into_a_spawned_process_and_back(server, client) -> None:
    found = _answers(server, client)
    found["raw response"] = client.chat.completions.with_raw_response.create(
        model="m", messages=user("raw")
    )
    expected = {
        name: f"{type(obj).__name__} {json.dumps(obj.to_dict(), sort_keys=True)}"
        if isinstance(obj, APIObject)
        else type(obj).__name__
        for name, obj in found.items()
    }
    # spawn: a fresh interpreter that imports everything anew, as Celery's workers and
    # another host's cache reader do; nothing is inherited from this process.
    # (An executor, not a Pool: a child that cannot unpickle its task breaks it at once.)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        back, read = pool.submit(_in_child, found).result(timeout=120)
    assert read == expected
    for name, original in found.items():
        if name == "raw response":
            assert back[name].http_response == original.http_response
            _same(original.parse(), back[name].parse())
        else:
            _same(original, back[name])
    if pydantic is not None:
        assert _parsed_of(back["parsed completion"]) == Capital(city="Rome", country="Italy")
