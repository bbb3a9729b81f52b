"""Request parameters as users of openai-python write them, turned into a JSON body.

Code written for ``openai.OpenAI`` passes things a plain JSON encoder refuses: the response
objects it got back (``messages.append(reply.choices[0].message)`` in a tool loop), tuples,
and "not given" sentinels (``temperature=openai.NOT_GIVEN``) meaning "leave it out". This is
the one place that turns them into plain JSON values, before validation and before sending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._exceptions import InvalidArgumentError
from ._models import APIObject

__all__ = ["NOT_GIVEN", "NotGiven", "is_not_given", "plain_params"]


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
            where, f"got the class {value.__name__}: a pydantic model goes to "
            "chat.completions.parse(response_format=...), which sends its schema and "
            "validates the answer; create() takes a dict such as {'type': 'json_schema', ...}")
    return value
