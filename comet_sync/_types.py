"""Response objects: attribute access over the JSON the API sent, nothing dropped.

A model wraps the decoded dict as it came. Attributes are looked up in it on access, nested
dicts and lists are wrapped on the way out, and ``to_dict()`` gives the raw JSON back. Fields
we do not know about stay reachable (``completion.system_fingerprint``), and a field the
OpenAI shape names but this answer lacks reads as ``None`` rather than raising, because which
optional fields arrive varies by the provider behind CometAPI.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any, ClassVar

__all__ = [
    "APIObject",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CreateEmbeddingResponse",
    "Embedding",
    "Model",
    "Response",
    "ResponseStreamEvent",
    "ResponseUsage",
    "ToolCall",
    "Usage",
]


class APIObject:
    """A read-only view of one JSON object from the API. It pickles, copies and deep-copies
    as that JSON (Django's cache, Celery's result backends, an agent's copied history)."""

    # Fields of the OpenAI shape: absent ones read as None. Others raise AttributeError when
    # absent, so a typo is not silently None.
    _known: ClassVar[frozenset[str]] = frozenset()
    # Which class wraps a nested object (or each element of a nested list) under a key.
    _nested: ClassVar[dict[str, type[APIObject]]] = {}

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Each field a class knows gets a descriptor: reading ``chunk.choices`` then costs one
        # dict lookup, not a failed attribute lookup and ``__getattr__`` (a streamed answer
        # reads a few fields of every chunk). Names the class defines itself are left alone.
        for name in cls._known:
            if name not in cls.__dict__:
                setattr(cls, name, _Field(name, cls._nested.get(name, APIObject)))

    if not TYPE_CHECKING:
        # Hidden from type checkers: the fields a class annotates are typed, and a typo
        # (``reply.choises``) is an error before it runs. A field no class names is still
        # reachable at run time, as an attribute or as ``obj["field"]``.
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__") and name.endswith("__"):
                # copy, pickle, numpy, Jinja... probe for hooks by attribute: a key the
                # server chose ("__deepcopy__") must never become one. Read it as obj[key].
                raise AttributeError(name)
            data = object.__getattribute__(self, "_data")
            if name in data:
                return _wrap(data[name], type(self)._nested.get(name, APIObject))
            if name in type(self)._known:
                return None
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through __init__ from its JSON, not by setting slots (which __setattr__
        # refuses): so pickle, copy and deepcopy work, and a pickle holds only what the API
        # sent, already scrubbed of the key. What a subclass keeps beside the JSON (a parsed
        # completion's ``.parsed``) goes as state.
        extra = getattr(self, "__dict__", None)
        return (type(self), (self._data,), dict(extra) if extra else None)

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key], type(self)._nested.get(key, APIObject))

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, APIObject):
            return bool(self._data == other._data)
        return NotImplemented

    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # mutable payload underneath

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._data) | self._known)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._data:
            return self[key]
        return default

    def model_dump(self, **_: Any) -> dict[str, Any]:
        """openai-python's (pydantic's) name for :meth:`to_dict`: a deep copy of the JSON."""
        return self.to_dict()

    def model_dump_json(self, *, indent: int | None = None, **_: Any) -> str:
        """The JSON as text, as pydantic's ``model_dump_json`` gives it."""
        return json.dumps(self._data, indent=indent, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as the API sent it (a deep copy: changing it changes nothing here)."""
        return copy.deepcopy(self._data)


class _Field:
    """A known field: its value in the object's JSON (None when absent), wrapped."""

    __slots__ = ("name", "nested")

    def __init__(self, name: str, nested: type[APIObject]) -> None:
        self.name = name
        self.nested = nested

    def __get__(self, obj: APIObject | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj._data.get(self.name)
        if isinstance(value, (dict, list)):
            return _wrap(value, self.nested)
        return value


def _wrap(value: Any, cls: type[APIObject]) -> Any:
    if isinstance(value, dict):
        return cls(value)
    if isinstance(value, list):
        return [_wrap(item, cls) for item in value]
    return value


class Usage(APIObject):
    _known = frozenset(
        {
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        }
    )
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


class FunctionCall(APIObject):
    _known = frozenset({"name", "arguments"})
    name: str | None
    arguments: str | None


class ToolCall(APIObject):
    _known = frozenset({"id", "type", "function", "index"})
    _nested = {"function": FunctionCall}
    id: str | None
    type: str | None
    function: FunctionCall | None


class ChatCompletionMessage(APIObject):
    _known = frozenset(
        {"role", "content", "refusal", "tool_calls", "function_call", "audio", "annotations"}
    )
    _nested = {"tool_calls": ToolCall, "function_call": FunctionCall}
    role: str | None
    content: str | None
    refusal: str | None
    tool_calls: list[ToolCall] | None


class Choice(APIObject):
    _known = frozenset({"index", "message", "finish_reason", "logprobs"})
    _nested = {"message": ChatCompletionMessage}
    index: int | None
    message: ChatCompletionMessage
    finish_reason: str | None


class ChatCompletion(APIObject):
    """The answer to ``chat.completions.create``.

    >>> completion.choices[0].message.content
    'Hello.'
    >>> completion.usage.total_tokens
    12
    """

    _known = frozenset(
        {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    )
    _nested = {"choices": Choice, "usage": Usage}
    id: str | None
    object: str | None
    created: int | None
    model: str | None
    choices: list[Choice]
    usage: Usage | None


class ChoiceDelta(APIObject):
    _known = frozenset({"role", "content", "refusal", "tool_calls", "function_call"})
    _nested = {"tool_calls": ToolCall, "function_call": FunctionCall}
    role: str | None
    content: str | None
    tool_calls: list[ToolCall] | None


class ChunkChoice(APIObject):
    _known = frozenset({"index", "delta", "finish_reason", "logprobs"})
    _nested = {"delta": ChoiceDelta}
    index: int | None
    delta: ChoiceDelta
    finish_reason: str | None


class ChatCompletionChunk(APIObject):
    """One event of a streamed chat completion: ``chunk.choices[0].delta.content``."""

    _known = frozenset(
        {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    )
    _nested = {"choices": ChunkChoice, "usage": Usage}
    id: str | None
    model: str | None
    choices: list[ChunkChoice]
    usage: Usage | None


class Model(APIObject):
    """An entry of ``GET /models``: ``.id``, ``.owned_by``; extra fields kept."""

    _known = frozenset({"id", "object", "created", "owned_by", "supported_endpoint_types"})
    id: str
    owned_by: str | None


class Embedding(APIObject):
    _known = frozenset({"object", "embedding", "index"})
    embedding: list[float]
    index: int


class CreateEmbeddingResponse(APIObject):
    """The answer to ``embeddings.create``: ``.data[i].embedding``, ``.usage``."""

    _known = frozenset({"object", "data", "model", "usage"})
    _nested = {"data": Embedding, "usage": Usage}
    data: list[Embedding]
    model: str | None
    usage: Usage | None


class ResponseUsage(APIObject):
    _known = frozenset(
        {
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "input_tokens_details",
            "output_tokens_details",
        }
    )
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None


class Response(APIObject):
    """The answer to ``responses.create`` (the Responses API): ``.output`` items,
    ``.output_text`` (every output text joined), ``.usage``, ``.status``."""

    _known = frozenset(
        {
            "id",
            "object",
            "created_at",
            "status",
            "model",
            "output",
            "usage",
            "error",
            "incomplete_details",
            "instructions",
            "previous_response_id",
        }
    )
    _nested = {"usage": ResponseUsage}
    id: str | None
    status: str | None
    model: str | None
    output: list[APIObject]
    usage: ResponseUsage | None

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of every output message, joined, as
        openai-python's ``Response.output_text`` gives it."""
        texts: list[str] = []
        for item in self._data.get("output") or []:
            if isinstance(item, dict) and item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and part.get("type") == "output_text":
                        texts.append(str(part.get("text") or ""))
        return "".join(texts)


class ResponseStreamEvent(APIObject):
    """One event of a streamed response: ``.type`` says which
    (``response.output_text.delta`` with ``.delta``, ``response.completed`` with
    ``.response``, ...)."""

    _known = frozenset(
        {
            "type",
            "delta",
            "text",
            "response",
            "item_id",
            "output_index",
            "content_index",
            "sequence_number",
            "item",
            "part",
        }
    )
    _nested = {"response": Response}
    type: str
    delta: str | None
    response: Response | None
