"""Response objects: attribute access over the JSON the API sent, nothing dropped.

A model wraps the decoded dict as it came. Attributes are looked up in it on access, nested
dicts and lists are wrapped on the way out, and ``to_dict()`` gives the raw JSON back. Fields
we do not know about stay reachable (``completion.provider_field``), and a field the OpenAI
shape declares but this answer lacks reads as ``None`` rather than raising, as openai-python's
do, because which optional fields arrive varies by the provider behind CometAPI.

Each class declares openai-python's fields for it (``_known``) and which of those openai
requires (``_required``): ``model_dump`` and friends (``_dump``) dump by them as pydantic
does. The annotations are openai's types for the fields code reads: a field the API always
sends (a tool call's ``id``, ``function.arguments``; usage's token counts) is not optional.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._dump import DumpOptions, IncEx, dump_object

__all__ = [
    "APIObject",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionTokenLogprob",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionTokensDetails",
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingUsage",
    "FunctionCall",
    "InputTokensDetails",
    "Model",
    "OutputTokensDetails",
    "PromptTokensDetails",
    "Response",
    "ResponseStreamEvent",
    "ResponseUsage",
    "ToolCall",
    "TopLogprob",
    "Usage",
]

_Self = TypeVar("_Self", bound="APIObject")


class APIObject:
    """A read-only view of one JSON object from the API. It pickles, copies and deep-copies
    as that JSON (Django's cache, Celery's result backends, an agent's copied history)."""

    # Fields of the OpenAI shape: absent ones read as None. Others raise AttributeError when
    # absent, so a typo is not silently None.
    _known: ClassVar[frozenset[str]] = frozenset()
    # Those openai-python requires (no default): exclude_defaults never drops them.
    _required: ClassVar[frozenset[str]] = frozenset()
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

    # -- openai-python's (pydantic's) methods -----------------------------------------------

    def model_dump(
        self,
        *,
        mode: str = "python",
        include: IncEx | None = None,
        exclude: IncEx | None = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: bool | str = True,
        serialize_as_any: bool = False,
    ) -> dict[str, Any]:
        """The object as a dict, as pydantic dumps openai-python's: a declared field the
        server left out is there as None unless ``exclude_unset``; ``exclude_none``,
        ``exclude_defaults``, ``include`` and ``exclude`` as pydantic has them. (``by_alias``,
        ``round_trip``, ``warnings``, ``serialize_as_any``: no field has an alias or a
        validator, so nothing to do.) A deep copy: changing it changes nothing here."""
        options = DumpOptions.checked(
            mode,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )
        return dump_object(self._data, type(self), options, include, exclude)

    def model_dump_json(
        self,
        *,
        indent: int | None = None,
        ensure_ascii: bool = False,
        include: IncEx | None = None,
        exclude: IncEx | None = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: bool | str = True,
        serialize_as_any: bool = False,
    ) -> str:
        """:meth:`model_dump` as JSON text, as pydantic writes it: compact (no spaces) unless
        ``indent``, non-ASCII as is unless ``ensure_ascii``."""
        dumped = self.model_dump(
            include=include,
            exclude=exclude,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )
        return _json_text(dumped, indent=indent, ensure_ascii=ensure_ascii)

    def to_dict(
        self,
        *,
        mode: str = "python",
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        warnings: bool = True,
    ) -> dict[str, Any]:
        """openai-python's ``to_dict()``: by default the JSON object as the API sent it (a
        deep copy), ``exclude_unset=True`` being the default here. (``use_api_names``: our
        fields have the API's names already.)"""
        options = DumpOptions.checked(
            mode,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )
        return dump_object(self._data, type(self), options)

    def to_json(
        self,
        *,
        indent: int | None = 2,
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        warnings: bool = True,
    ) -> str:
        """openai-python's ``to_json()``: :meth:`to_dict` as JSON text, indented by 2 unless
        ``indent=None``."""
        dumped = self.to_dict(
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )
        return _json_text(dumped, indent=indent, ensure_ascii=False)

    @property
    def model_fields_set(self) -> set[str]:
        """The declared fields the server sent (pydantic's "set" fields; extras are not)."""
        return {name for name in self._data if name in type(self)._known}

    def model_copy(
        self: _Self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> _Self:
        """A copy, with ``update``'s fields set in it (unvalidated, as pydantic does: a
        response object given is stored as its JSON). Shallow unless ``deep``: nested
        objects are shared, which is safe, as they are read-only."""
        data = copy.deepcopy(self._data) if deep else dict(self._data)
        for name, value in (update or {}).items():
            data[name] = _as_json(value)
        state = getattr(self, "__dict__", None)
        new = type(self)(data)
        if state:  # what a subclass keeps beside the JSON (a parsed completion's objects)
            new.__setstate__(copy.deepcopy(state) if deep else dict(state))
        return new


def _json_text(value: Any, *, indent: int | None, ensure_ascii: bool) -> str:
    # pydantic's layout: '{"a":1}' compact, '{\n  "a": 1\n}' indented.
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(value, indent=indent, separators=separators, ensure_ascii=ensure_ascii)


def _as_json(value: Any) -> Any:
    """A value given to ``model_copy(update=...)`` as JSON: response objects as their dicts."""
    if isinstance(value, APIObject):
        return value._data
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    return value


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


def _fields(*names: str) -> frozenset[str]:
    return frozenset(names)


# -- chat completions: usage ------------------------------------------------------------------


class PromptTokensDetails(APIObject):
    _known = _fields(
        "audio_tokens", "cache_write_tokens", "cached_tokens", "image_tokens", "text_tokens"
    )
    audio_tokens: int | None
    cached_tokens: int | None


class CompletionTokensDetails(APIObject):
    _known = _fields(
        "accepted_prediction_tokens",
        "audio_tokens",
        "reasoning_tokens",
        "rejected_prediction_tokens",
        "text_tokens",
    )
    accepted_prediction_tokens: int | None
    audio_tokens: int | None
    reasoning_tokens: int | None
    rejected_prediction_tokens: int | None


class Usage(APIObject):
    """A chat completion's token counts (openai's ``CompletionUsage``)."""

    _required = _fields("completion_tokens", "prompt_tokens", "total_tokens")
    _known = _required | {"completion_tokens_details", "prompt_tokens_details"}
    _nested = {
        "completion_tokens_details": CompletionTokensDetails,
        "prompt_tokens_details": PromptTokensDetails,
    }
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None
    completion_tokens_details: CompletionTokensDetails | None


# -- chat completions: the message ------------------------------------------------------------


class FunctionCall(APIObject):
    """A tool call's function (and the deprecated ``message.function_call``): the API always
    sends both fields."""

    _required = _fields("arguments", "name")
    _known = _required
    name: str
    arguments: str


class ToolCall(APIObject):
    """A tool call of a reply's message (openai's ``ChatCompletionMessageToolCall``):
    ``json.loads(tc.function.arguments)``, answered with ``tool_call_id=tc.id``."""

    _required = _fields("id", "function", "type")
    _known = _required
    _nested = {"function": FunctionCall}
    id: str
    type: str
    function: FunctionCall


class TopLogprob(APIObject):
    _required = _fields("token", "bytes", "logprob")
    _known = _required
    token: str
    bytes: list[int] | None
    logprob: float


class ChatCompletionTokenLogprob(APIObject):
    _required = _fields("token", "bytes", "logprob", "top_logprobs")
    _known = _required
    _nested = {"top_logprobs": TopLogprob}
    token: str
    bytes: list[int] | None
    logprob: float
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(APIObject):
    _known = _fields("content", "refusal")
    _nested = {"content": ChatCompletionTokenLogprob, "refusal": ChatCompletionTokenLogprob}
    content: list[ChatCompletionTokenLogprob] | None
    refusal: list[ChatCompletionTokenLogprob] | None


class ChatCompletionMessage(APIObject):
    _required = _fields("role")
    _known = _required | {
        "content",
        "refusal",
        "annotations",
        "audio",
        "function_call",
        "tool_calls",
    }
    _nested = {"tool_calls": ToolCall, "function_call": FunctionCall}
    role: str
    content: str | None
    refusal: str | None
    tool_calls: list[ToolCall] | None
    annotations: list[APIObject] | None
    audio: APIObject | None
    function_call: FunctionCall | None


class Choice(APIObject):
    _required = _fields("finish_reason", "index", "message")
    _known = _required | {"logprobs"}
    _nested = {"message": ChatCompletionMessage, "logprobs": ChoiceLogprobs}
    index: int
    message: ChatCompletionMessage
    finish_reason: str
    logprobs: ChoiceLogprobs | None


class ChatCompletion(APIObject):
    """The answer to ``chat.completions.create``.

    >>> completion.choices[0].message.content
    'Hello.'
    >>> completion.usage.total_tokens
    12
    """

    _required = _fields("id", "choices", "created", "model", "object")
    _known = _required | {
        "metadata",
        "moderation",
        "service_tier",
        "system_fingerprint",
        "usage",
    }
    _nested = {"choices": Choice, "usage": Usage}
    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None
    service_tier: str | None
    system_fingerprint: str | None
    metadata: dict[str, str] | None


# -- chat completions: streamed ---------------------------------------------------------------


class ChoiceDeltaToolCallFunction(APIObject):
    """A fragment of a streamed tool call's function: either part may be missing."""

    _known = _fields("arguments", "name")
    name: str | None
    arguments: str | None


class ChoiceDeltaFunctionCall(ChoiceDeltaToolCallFunction):
    """A fragment of the deprecated ``function_call``, streamed."""


class ChoiceDeltaToolCall(APIObject):
    """A fragment of a streamed tool call: ``index`` says which call it continues; the id,
    the type and the name come with the first fragment only."""

    _required = _fields("index")
    _known = _required | {"id", "function", "type"}
    _nested = {"function": ChoiceDeltaToolCallFunction}
    index: int
    id: str | None
    type: str | None
    function: ChoiceDeltaToolCallFunction | None


class ChoiceDelta(APIObject):
    _known = _fields("audio", "content", "function_call", "refusal", "role", "tool_calls")
    _nested = {"tool_calls": ChoiceDeltaToolCall, "function_call": ChoiceDeltaFunctionCall}
    role: str | None
    content: str | None
    refusal: str | None
    tool_calls: list[ChoiceDeltaToolCall] | None
    function_call: ChoiceDeltaFunctionCall | None


class ChunkChoice(APIObject):
    _required = _fields("delta", "index")
    _known = _required | {"finish_reason", "logprobs"}
    _nested = {"delta": ChoiceDelta, "logprobs": ChoiceLogprobs}
    index: int
    delta: ChoiceDelta
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None


class ChatCompletionChunk(APIObject):
    """One event of a streamed chat completion: ``chunk.choices[0].delta.content``."""

    _required = _fields("id", "choices", "created", "model", "object")
    _known = _required | {
        "moderation",
        "obfuscation",
        "service_tier",
        "system_fingerprint",
        "usage",
    }
    _nested = {"choices": ChunkChoice, "usage": Usage}
    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None
    service_tier: str | None
    system_fingerprint: str | None


# -- models, embeddings -----------------------------------------------------------------------


class Model(APIObject):
    """An entry of ``GET /models``: ``.id``, ``.owned_by``; extra fields kept (CometAPI's
    ``supported_endpoint_types``)."""

    _required = _fields("id", "created", "object", "owned_by")
    _known = _required | {"shutdown_date"}
    id: str
    created: int
    object: str
    owned_by: str
    shutdown_date: str | None


class Embedding(APIObject):
    _required = _fields("embedding", "index", "object")
    _known = _required
    embedding: list[float]
    index: int
    object: str


class EmbeddingUsage(APIObject):
    _required = _fields("prompt_tokens", "total_tokens")
    _known = _required
    prompt_tokens: int
    total_tokens: int


class CreateEmbeddingResponse(APIObject):
    """The answer to ``embeddings.create``: ``.data[i].embedding``, ``.usage``."""

    _required = _fields("data", "model", "object", "usage")
    _known = _required
    _nested = {"data": Embedding, "usage": EmbeddingUsage}
    data: list[Embedding]
    model: str
    object: str
    usage: EmbeddingUsage


# -- the Responses API ------------------------------------------------------------------------


class InputTokensDetails(APIObject):
    _required = _fields("cached_tokens")
    _known = _required
    cached_tokens: int


class OutputTokensDetails(APIObject):
    _required = _fields("reasoning_tokens")
    _known = _required
    reasoning_tokens: int


class ResponseUsage(APIObject):
    _required = _fields(
        "input_tokens",
        "input_tokens_details",
        "output_tokens",
        "output_tokens_details",
        "total_tokens",
    )
    _known = _required
    _nested = {
        "input_tokens_details": InputTokensDetails,
        "output_tokens_details": OutputTokensDetails,
    }
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens_details: OutputTokensDetails


class Response(APIObject):
    """The answer to ``responses.create`` (the Responses API): ``.output`` items,
    ``.output_text`` (every output text joined), ``.usage``, ``.status``."""

    _required = _fields(
        "id",
        "created_at",
        "model",
        "object",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
    )
    _known = _required | {
        "access_programs",
        "background",
        "completed_at",
        "conversation",
        "error",
        "image",
        "incomplete_details",
        "input_transformations",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "moderation",
        "previous_response_id",
        "prompt",
        "prompt_cache_diagnostics",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "status",
        "temperature",
        "text",
        "tool_usage",
        "top_logprobs",
        "top_p",
        "truncation",
        "usage",
        "user",
    }
    _nested = {"usage": ResponseUsage}
    id: str
    object: str
    created_at: float
    model: str
    status: str | None
    output: list[APIObject]
    usage: ResponseUsage | None
    error: APIObject | None
    incomplete_details: APIObject | None
    instructions: Any
    metadata: dict[str, str] | None
    previous_response_id: str | None
    service_tier: str | None
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None

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
