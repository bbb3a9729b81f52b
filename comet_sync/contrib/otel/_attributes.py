"""A call's request and answer as attributes of the GenAI semantic conventions. Pure: JSON in,
attribute dicts out, no OpenTelemetry import.

The names and values follow opentelemetry-instrumentation-openai-v2 (the conventions'
reference instrumentation of openai-python), so that a dashboard built on it reads our spans
the same way; the Responses API, which it does not instrument, follows the conventions'
OpenAI page (operation ``chat``, ``openai.api.type`` ``responses``).
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from typing import Any, Union

from ..._resources.chat import Completions
from ..._resources.embeddings import Embeddings
from ..._resources.responses import Responses

__all__ = [
    "Attributes",
    "Operation",
    "call_attributes",
    "operation_of",
    "request_parameters",
    "response_attributes",
    "server_of",
    "usage_attributes",
    "usage_detail_attributes",
]

# What an attribute may hold (OpenTelemetry's AttributeValue, without importing it).
Value = Union[str, bool, int, float, list[str]]
Attributes = dict[str, Value]


class Operation:
    """What a route is, in the conventions' words."""

    __slots__ = ("api_type", "name", "route")

    def __init__(self, route: str, name: str, api_type: str | None) -> None:
        self.route = route
        self.name = name  # gen_ai.operation.name
        self.api_type = api_type  # openai.api.type


_OPERATIONS = {
    op.route: op
    for op in (
        # (the routes the resources declare, read from them)
        Operation(Completions.route, "chat", "chat_completions"),
        Operation(Responses.route, "chat", "responses"),
        Operation(Embeddings.route, "embeddings", None),
    )
}


def operation_of(route: str) -> Operation | None:
    """The GenAI operation a route is; None for routes that are none (the model list)."""
    return _OPERATIONS.get(route)


@functools.lru_cache(maxsize=64)  # one base URL per client: parsed once, not per call
def server_of(base_url: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of the base URL (no port for 443, as the
    reference instrumentation leaves it out)."""
    parts = urllib.parse.urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname, None if port == 443 else port


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _output_type(kind: Any) -> str | None:
    if not isinstance(kind, str):
        return None
    return "json" if kind in ("json_object", "json_schema") else kind


def call_attributes(op: Operation, model: str | None) -> Attributes:
    """The attributes every call of ``op`` on ``model`` starts with (the same for each: built
    once per model, see ``_watch.Shape``)."""
    attrs: Attributes = {"gen_ai.operation.name": op.name}
    if model:
        attrs["gen_ai.request.model"] = model
    if op.api_type is not None:
        attrs["openai.api.type"] = op.api_type
    return attrs


# A JSON object: ``dict`` first, which isinstance answers at once (the payloads and answers are
# dicts), then any Mapping (an ABC check, slower).
_MAPPING = (dict, Mapping)

# The chat and Responses parameters the conventions name, numeric: the request's key, the
# attribute.
_NUMERIC = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "seed": "gen_ai.request.seed",
}
# The most tokens the answer may have, whichever API's name the request used (the first found).
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def request_parameters(
    attrs: Attributes, op: Operation, payload: Mapping[str, Any], stream: bool
) -> None:
    """Adds to ``attrs`` what the request asks beyond its model (the conventions' request
    parameters). One pass over the payload's keys (a chat request has a handful), not a
    lookup per parameter the conventions name."""
    if op.name == "embeddings":
        fmt = payload.get("encoding_format")
        if isinstance(fmt, str):
            attrs["gen_ai.request.encoding_formats"] = [fmt]
        dims = _number(payload.get("dimensions"))
        if isinstance(dims, int):
            attrs["gen_ai.embeddings.dimension.count"] = dims
        return
    if stream:
        attrs["gen_ai.request.stream"] = True
    limit = False
    for key, value in payload.items():
        name = _NUMERIC.get(key)
        if name is not None:
            number = _number(value)
            if number is not None:
                attrs[name] = number
        elif key in _MAX_TOKENS:
            limit = True
        elif key == "stop":
            if isinstance(value, str):
                attrs["gen_ai.request.stop_sequences"] = [value]
            elif isinstance(value, list) and all(isinstance(s, str) for s in value):
                attrs["gen_ai.request.stop_sequences"] = list(value)
        elif key == "n":
            if isinstance(value, int) and not isinstance(value, bool) and value != 1:
                attrs["gen_ai.request.choice.count"] = value
        elif key == "service_tier":
            if isinstance(value, str):
                attrs["openai.request.service_tier"] = value
        elif key == "response_format" or key == "text":
            output = _output_type(_format_type(payload))
            if output is not None:
                attrs["gen_ai.output.type"] = output
    if limit:
        for key in _MAX_TOKENS:
            value = _number(payload.get(key))
            if isinstance(value, int):
                attrs["gen_ai.request.max_tokens"] = value
                break


def _format_type(payload: Mapping[str, Any]) -> Any:
    """The requested answer format: chat's ``response_format``, the Responses API's
    ``text.format``."""
    fmt = payload.get("response_format")
    if fmt is None:
        text = payload.get("text")
        fmt = text.get("format") if isinstance(text, _MAPPING) else None
    if isinstance(fmt, _MAPPING):
        return fmt.get("type")
    return fmt


def response_attributes(op: Operation, answer: Mapping[str, Any]) -> Attributes:
    """The attributes an answer gives its call: who answered, why it stopped (what it cost is
    :func:`usage_attributes` and :func:`usage_detail_attributes`, which the metrics read
    too)."""
    attrs: Attributes = {}
    model = answer.get("model")
    if isinstance(model, str) and model:
        attrs["gen_ai.response.model"] = model
    if op.name != "embeddings":
        rid = answer.get("id")
        if isinstance(rid, str) and rid:
            attrs["gen_ai.response.id"] = rid
        reasons = _response_reasons(answer) if op.api_type == "responses" else _chat_reasons(answer)
        if reasons:
            attrs["gen_ai.response.finish_reasons"] = reasons
        fingerprint = answer.get("system_fingerprint")
        if isinstance(fingerprint, str):
            attrs["openai.response.system_fingerprint"] = fingerprint
        tier = answer.get("service_tier")
        if isinstance(tier, str):
            attrs["openai.response.service_tier"] = tier
    return attrs


def usage_attributes(usage: Any) -> dict[str, int]:
    """``gen_ai.usage.*`` from either API's usage object."""
    if not isinstance(usage, _MAPPING):
        return {}
    found: dict[str, int] = {}
    for keys, name in (
        (("prompt_tokens", "input_tokens"), "gen_ai.usage.input_tokens"),
        (("completion_tokens", "output_tokens"), "gen_ai.usage.output_tokens"),
    ):
        for key in keys:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                found[name] = value
                break
    return found


# Parts of the input and output counts the conventions name: (where either API puts them, the
# field, the attribute). Both are parts of gen_ai.usage.input_tokens / output_tokens, as the
# conventions define them, and set as they advise: "when available and non-zero" (OpenAI's chat
# answers carry both details on every call, zeros for a model that neither caches nor reasons).
_DETAILS = (
    (
        ("prompt_tokens_details", "input_tokens_details"),
        "cached_tokens",
        "gen_ai.usage.cache_read.input_tokens",
    ),
    (
        ("completion_tokens_details", "output_tokens_details"),
        "reasoning_tokens",
        "gen_ai.usage.reasoning.output_tokens",
    ),
)


def usage_detail_attributes(usage: Any) -> dict[str, int]:
    """The cached input and reasoning output counts, from either API's usage details, when
    not zero."""
    if not isinstance(usage, _MAPPING):
        return {}
    found: dict[str, int] = {}
    for keys, field, name in _DETAILS:
        for key in keys:
            details = usage.get(key)
            if isinstance(details, _MAPPING):
                value = details.get(field)
                if isinstance(value, int) and not isinstance(value, bool) and value:
                    found[name] = value
                break
    return found


def _chat_reasons(answer: Mapping[str, Any]) -> list[str]:
    choices = answer.get("choices")
    if not isinstance(choices, list):
        return []
    # A choice without a reason ended badly, as the reference instrumentation says.
    return [
        str(choice.get("finish_reason") or "error")
        for choice in choices
        if isinstance(choice, _MAPPING)
    ]


# The Responses API has a status, not a finish reason: said in chat's words.
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _response_reasons(answer: Mapping[str, Any]) -> list[str]:
    status = answer.get("status")
    if status == "completed":
        output = answer.get("output")
        calls = isinstance(output, list) and any(
            isinstance(item, _MAPPING) and item.get("type") == "function_call" for item in output
        )
        return ["tool_calls" if calls else "stop"]
    if status == "incomplete":
        details = answer.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, _MAPPING) else None
        return [_INCOMPLETE.get(str(reason), str(reason or "incomplete"))]
    return [str(status)] if isinstance(status, str) else []
