"""Request parameters as users of openai-python write them, turned into a JSON body.

Code written for ``openai.OpenAI`` passes things a plain JSON encoder refuses: the response
objects it got back (``messages.append(reply.choices[0].message)`` in a tool loop), tuples,
and "not given" sentinels (``temperature=openai.NOT_GIVEN``) meaning "leave it out". This is
the one place that turns them into plain JSON values, before validation and before sending.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Union

from ._exceptions import InvalidArgumentError
from ._messages import ChatCompletionMessageParam
from ._types import APIObject

if TYPE_CHECKING:
    from ._config import TimeoutArg

__all__ = [
    "CALL_OPTION_NAMES",
    "NOT_GIVEN",
    "CallOptionParams",
    "ChatCompletionParams",
    "NotGiven",
    "OptionParams",
    "ResponseCreateParams",
    "check_query",
    "is_not_given",
    "plain_params",
]


class NotGiven:
    """The value of a parameter left out on purpose (openai-python's ``NOT_GIVEN``, whose
    ``None`` would mean "send null"). Falsy, like openai's."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()

# openai-python's sentinels, recognised by their class name so that we need not import it.
_FOREIGN_SENTINELS = frozenset({"NotGiven", "Omit"})


def is_not_given(value: object) -> bool:
    return value is NOT_GIVEN or type(value).__name__ in _FOREIGN_SENTINELS


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` fit for JSON: our response objects become their dicts, tuples
    lists, and "not given" entries are left out, at any depth."""
    return {key: _plain(value, key) for key, value in params.items() if not is_not_given(value)}


def check_query(query: object, argument: str) -> dict[str, str]:
    """Query parameters as sent: each value a string (a dict or list as its JSON), "not
    given" ones left out; raises naming ``argument`` when it is not a dict with str keys."""
    if not isinstance(query, Mapping) or not all(isinstance(k, str) for k in query):
        raise InvalidArgumentError(argument, "expected a dict of str to values")
    return {
        k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list)) else str(v)
        for k, v in query.items()
        if not is_not_given(v)
    }


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, APIObject):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items() if not is_not_given(v)}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        # A pydantic model class, as openai's parse() takes for response_format.
        raise InvalidArgumentError(
            where,
            f"got the class {value.__name__}: a pydantic model goes to "
            "chat.completions.parse(response_format=...), which sends its schema and "
            "validates the answer; create() takes a dict such as {'type': 'json_schema', ...}",
        )
    return value


# -- the request parameters, typed for checkers ------------------------------------------------
# openai-python's names, so that a typo (create(modle=...)) is an error before it runs. A
# parameter not listed here still passes through at run time; to pass one without a checker's
# complaint, use extra_body={...}. NotGiven everywhere: "leave it out".

# A Responses API input item: a message, or an item without a role (a function call's
# output, a reasoning item); left open.
InputItem = Union[Mapping[str, Any], APIObject]


class _ChatRequired(TypedDict):
    model: str
    messages: Sequence[ChatCompletionMessageParam]


class _ChatBody(_ChatRequired, total=False):
    """The body of a chat call but ``response_format``, which ``create`` takes as a dict and
    ``parse`` as a class."""

    audio: Mapping[str, Any] | NotGiven | None
    frequency_penalty: float | NotGiven | None
    function_call: str | Mapping[str, Any] | NotGiven
    functions: Sequence[Mapping[str, Any]] | NotGiven
    logit_bias: Mapping[str, int] | NotGiven | None
    logprobs: bool | NotGiven | None
    max_completion_tokens: int | NotGiven | None
    max_tokens: int | NotGiven | None
    metadata: Mapping[str, str] | NotGiven | None
    modalities: Sequence[str] | NotGiven | None
    n: int | NotGiven | None
    parallel_tool_calls: bool | NotGiven
    prediction: Mapping[str, Any] | NotGiven | None
    presence_penalty: float | NotGiven | None
    prompt_cache_key: str | NotGiven
    reasoning_effort: str | NotGiven | None
    safety_identifier: str | NotGiven
    seed: int | NotGiven | None
    service_tier: str | NotGiven | None
    stop: str | Sequence[str] | NotGiven | None
    store: bool | NotGiven | None
    stream_options: Mapping[str, Any] | NotGiven | None
    temperature: float | NotGiven | None
    tool_choice: str | Mapping[str, Any] | NotGiven
    tools: Sequence[Mapping[str, Any]] | NotGiven
    top_logprobs: int | NotGiven | None
    top_p: float | NotGiven | None
    user: str | NotGiven
    verbosity: str | NotGiven | None
    web_search_options: Mapping[str, Any] | NotGiven


class ChatCompletionParams(_ChatBody, total=False):
    """The body of ``chat.completions.create`` (``model`` and ``messages`` required)."""

    response_format: Mapping[str, Any] | NotGiven


class OptionParams(TypedDict, total=False):
    """The options that shape how a call is sent, not what it sends."""

    timeout: TimeoutArg | NotGiven
    max_retries: int | None
    total_timeout: float | None
    extra_headers: Mapping[str, str] | None
    extra_query: Mapping[str, Any] | None


class CallOptionParams(OptionParams, total=False):
    """The options every call takes beside its body (see ``chat.completions.create``)."""

    extra_body: Mapping[str, Any] | None
    fallbacks: Sequence[str] | None


# The keywords of create() that configure the call rather than go into the body: a job of
# submit() or map(), one dict of create()'s keywords, is split by them.
CALL_OPTION_NAMES = frozenset(CallOptionParams.__annotations__)


class ChatCreateArgs(ChatCompletionParams, CallOptionParams, total=False):
    """Every keyword of ``chat.completions.create`` but ``stream``."""


class ChatParseArgs(_ChatBody, CallOptionParams, total=False):
    """Every keyword of ``chat.completions.parse`` but ``response_format``."""


class _ResponsesRequired(TypedDict):
    model: str
    input: str | Sequence[InputItem]


class ResponseCreateParams(_ResponsesRequired, total=False):
    """The body of ``responses.create`` (``model`` and ``input`` required)."""

    background: bool | NotGiven | None
    include: Sequence[str] | NotGiven | None
    instructions: str | NotGiven | None
    max_output_tokens: int | NotGiven | None
    max_tool_calls: int | NotGiven | None
    metadata: Mapping[str, str] | NotGiven | None
    parallel_tool_calls: bool | NotGiven | None
    previous_response_id: str | NotGiven | None
    prompt: Mapping[str, Any] | NotGiven | None
    prompt_cache_key: str | NotGiven
    reasoning: Mapping[str, Any] | NotGiven | None
    safety_identifier: str | NotGiven
    service_tier: str | NotGiven | None
    store: bool | NotGiven | None
    temperature: float | NotGiven | None
    text: Mapping[str, Any] | NotGiven
    tool_choice: str | Mapping[str, Any] | NotGiven
    tools: Sequence[Mapping[str, Any]] | NotGiven
    top_logprobs: int | NotGiven | None
    top_p: float | NotGiven | None
    truncation: str | NotGiven | None
    user: str | NotGiven


class ResponseCreateArgs(ResponseCreateParams, CallOptionParams, total=False):
    """Every keyword of ``responses.create`` but ``stream``."""
