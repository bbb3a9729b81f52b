"""Structured outputs: ``chat.completions.parse(response_format=SomePydanticModel, ...)``.

The model class becomes a strict JSON schema (``response_format={"type": "json_schema", ...}``,
every object closed and every property required, as OpenAI's strict mode demands), the call
runs as any other, and each choice's content is validated back into the class:
``completion.choices[0].message.parsed``. pydantic (v2) is an optional extra:
``pip install 'comet-sync[pydantic]'``.
"""

from __future__ import annotations

import copy
from typing import Any, Generic, TypeVar

from .._exceptions import APIResponseValidationError, InvalidArgumentError
from .._types import ChatCompletion, ChatCompletionMessage, Choice

__all__ = ["ParsedChatCompletion", "json_schema_format", "parse_completion"]

M = TypeVar("M")


def json_schema_format(model: type[Any]) -> dict[str, Any]:
    """The ``response_format`` for a pydantic model class."""
    schema_of = getattr(model, "model_json_schema", None)
    if not isinstance(model, type) or schema_of is None:
        raise InvalidArgumentError(
            "response_format",
            "parse() takes a pydantic (v2) model class; for a plain dict format use create()",
        )
    return {
        "type": "json_schema",
        "json_schema": {
            "name": model.__name__,
            "schema": _strict(copy.deepcopy(schema_of())),
            "strict": True,
        },
    }


def _strict(schema: Any) -> Any:
    """Close every object and require every property, at any depth ($defs included)."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and isinstance(schema.get("properties"), dict):
            schema["additionalProperties"] = False
            schema["required"] = list(schema["properties"])
        for value in schema.values():
            _strict(value)
    elif isinstance(schema, list):
        for item in schema:
            _strict(item)
    return schema


class ParsedChatCompletionMessage(ChatCompletionMessage, Generic[M]):
    """A message with ``.parsed``: its content validated into the ``response_format`` class
    (None when the model refused or sent no content)."""

    parsed: M | None


class ParsedChoice(Choice, Generic[M]):
    message: ParsedChatCompletionMessage[M]  # pyright: ignore[reportIncompatibleVariableOverride]


class ParsedChatCompletion(ChatCompletion, Generic[M]):
    """A completion whose choices' messages have ``.parsed``."""

    choices: list[ParsedChoice[M]]  # type: ignore[assignment]  # pyright: ignore  (narrowed)


def parse_completion(data: dict[str, Any], model: type[M]) -> ParsedChatCompletion[M]:
    completion: ParsedChatCompletion[M] = ParsedChatCompletion(data)
    choices: list[ParsedChoice[M]] = []
    for raw in data.get("choices") or []:
        choice: ParsedChoice[M] = ParsedChoice(raw)
        message_data = raw.get("message") or {}
        message: ParsedChatCompletionMessage[M] = ParsedChatCompletionMessage(message_data)
        content = message_data.get("content")
        parsed = None
        if isinstance(content, str) and content and not message_data.get("refusal"):
            try:
                parsed = model.model_validate_json(content)  # type: ignore[attr-defined]
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise APIResponseValidationError(
                    f"the answer does not match {model.__name__}: {str(exc)[:300]}",
                    response=None,  # type: ignore[arg-type]
                    status_code=200,
                    request_id=data.get("id"),
                    body=data,
                ) from None
        # Set beside the JSON view (read-only otherwise): the object, not a copy of it.
        object.__setattr__(message, "parsed", parsed)
        object.__setattr__(choice, "message", message)
        choices.append(choice)
    object.__setattr__(completion, "choices", choices)
    return completion
