"""Structured outputs: ``chat.completions.parse(response_format=SomePydanticModel, ...)``.

The model class becomes a strict JSON schema (``response_format={"type": "json_schema", ...}``,
every object closed and every property required, as OpenAI's strict mode demands), the call
runs as any other, and each choice's content is validated back into the class:
``completion.choices[0].message.parsed``; calls to strict function tools come back with
``tool_call.function.parsed_arguments`` (see ``function_tools.py``). What openai-python raises,
we raise: pydantic's ``ValidationError`` for content that does not fit, and
:class:`LengthFinishReasonError` / :class:`ContentFilterFinishReasonError` for a reply the
model did not finish (its JSON would be cut or missing). pydantic (v2) is an optional extra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Callable, Generic, TypeVar

from .._exceptions import (
    ContentFilterFinishReasonError,
    InvalidArgumentError,
    LengthFinishReasonError,
)
from .._params import is_not_given
from .._types import ChatCompletion, ChatCompletionMessage, Choice, FunctionCall, ToolCall
from .strict_schema import strict_schema

__all__ = [
    "ParsedChatCompletion",
    "ParsedChatCompletionMessage",
    "ParsedChoice",
    "ParsedFunction",
    "ParsedFunctionToolCall",
    "content_format",
    "parse_completion",
]

M = TypeVar("M")

# Turns a message's content (JSON text) into the response_format's object.
ContentParser = Callable[[str], Any]


def content_format(
    response_format: object,
) -> tuple[Mapping[str, Any] | None, ContentParser | None]:
    """``parse()``'s ``response_format``: what to send, and what parses the content back. A
    pydantic model class (or a dataclass, through pydantic) is sent as its strict schema; a
    dict is sent as it is and nothing is parsed (``.parsed`` stays None), as openai-python
    does; not given, nothing is sent."""
    if response_format is None or is_not_given(response_format):
        return None, None
    if isinstance(response_format, Mapping):
        return response_format, None
    if not isinstance(response_format, type):
        raise InvalidArgumentError(
            "response_format", f"expected a pydantic model class, got {response_format!r}"
        )
    schema_of = getattr(response_format, "model_json_schema", None)
    if schema_of is not None:
        schema, parser = schema_of(), response_format.model_validate_json  # type: ignore[attr-defined]
    elif dataclasses.is_dataclass(response_format):
        adapter = _type_adapter(response_format)
        schema, parser = adapter.json_schema(), adapter.validate_json
    else:
        raise InvalidArgumentError(
            "response_format",
            "parse() takes a pydantic (v2) model class or a dataclass; "
            "for a plain dict format use create()",
        )
    wire = {
        "type": "json_schema",
        "json_schema": {
            "name": response_format.__name__,
            "schema": strict_schema(schema),
            "strict": True,
        },
    }
    return wire, parser


def _type_adapter(kind: type[Any]) -> Any:
    try:
        import pydantic
    except ImportError:  # pragma: no cover - the extra is missing
        raise InvalidArgumentError(
            "response_format", "a dataclass needs pydantic v2 to be parsed"
        ) from None
    return pydantic.TypeAdapter(kind)


class ParsedFunction(FunctionCall):
    """A tool call's function with ``parsed_arguments``: an instance of the pydantic model of
    the tool it calls, or the decoded JSON for a strict dict tool (None for a tool not given)."""

    parsed_arguments: object


class ParsedFunctionToolCall(ToolCall):
    function: ParsedFunction  # pyright: ignore[reportIncompatibleVariableOverride]


class ParsedChatCompletionMessage(ChatCompletionMessage, Generic[M]):
    """A message with ``.parsed``: its content validated into the ``response_format`` class
    (None when the model refused, sent no content, or no class was given), and tool calls
    with ``.function.parsed_arguments``."""

    parsed: M | None
    tool_calls: list[ParsedFunctionToolCall] | None  # type: ignore[assignment]  # pyright: ignore  (narrowed)


class ParsedChoice(Choice, Generic[M]):
    message: ParsedChatCompletionMessage[M]  # pyright: ignore[reportIncompatibleVariableOverride]


class ParsedChatCompletion(ChatCompletion, Generic[M]):
    """A completion whose choices' messages have ``.parsed``."""

    choices: list[ParsedChoice[M]]  # type: ignore[assignment]  # pyright: ignore  (narrowed)


def parse_completion(
    data: dict[str, Any],
    content_parser: ContentParser | None,
    argument_parsers: Mapping[str, Callable[[str], object]],
) -> ParsedChatCompletion[Any]:
    """The completion with each choice's content and tool-call arguments parsed. A choice the
    model did not finish raises first, before anything is parsed: its JSON is cut short."""
    for raw in data.get("choices") or []:
        reason = raw.get("finish_reason") if isinstance(raw, dict) else None
        if reason == "length":
            raise LengthFinishReasonError(completion=ChatCompletion(data))
        if reason == "content_filter":
            raise ContentFilterFinishReasonError(completion=ChatCompletion(data))
    completion: ParsedChatCompletion[Any] = ParsedChatCompletion(data)
    choices: list[ParsedChoice[Any]] = []
    for raw in data.get("choices") or []:
        choice: ParsedChoice[Any] = ParsedChoice(raw)
        message_data = raw.get("message") or {}
        message: ParsedChatCompletionMessage[Any] = ParsedChatCompletionMessage(message_data)
        content = message_data.get("content")
        parsed = None
        refused = bool(message_data.get("refusal"))
        if content_parser is not None and isinstance(content, str) and content and not refused:
            # pydantic's ValidationError propagates, as from openai-python.
            parsed = content_parser(content)
        # Set beside the JSON view (read-only otherwise): the object, not a copy of it.
        object.__setattr__(message, "parsed", parsed)
        object.__setattr__(
            message, "tool_calls", _parsed_tool_calls(message_data, argument_parsers)
        )
        object.__setattr__(choice, "message", message)
        choices.append(choice)
    object.__setattr__(completion, "choices", choices)
    return completion


def _parsed_tool_calls(
    message: dict[str, Any], parsers: Mapping[str, Callable[[str], object]]
) -> list[Any] | None:
    calls: list[Any] = []
    for raw in message.get("tool_calls") or []:
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict) or raw.get("type", "function") != "function":
            calls.append(ToolCall(raw) if isinstance(raw, dict) else raw)  # kept as it came
            continue
        call = ParsedFunctionToolCall(raw)
        parsed = ParsedFunction(function)
        parser = parsers.get(function.get("name"))  # type: ignore[arg-type]
        arguments = function.get("arguments")
        value = parser(arguments) if parser is not None and isinstance(arguments, str) else None
        object.__setattr__(parsed, "parsed_arguments", value)
        object.__setattr__(call, "function", parsed)
        calls.append(call)
    # None rather than [] when there are none, as openai-python gives it.
    return calls or None
