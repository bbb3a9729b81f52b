"""Argument checks that run before any request is sent.

They check shape, not policy: which parameters a model accepts varies by the provider behind
CometAPI, so unknown parameters pass through untouched and only what every chat call needs is
checked here, with an error that names the argument.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ._exceptions import InvalidArgumentError

__all__ = ["check_chat_params", "check_stream"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def check_stream(stream: object) -> None:
    """``stream`` picks the return type (a stream or an answer): a truthy string such as
    ``"yes"`` or ``"false"`` would pick one by accident."""
    if stream is not None and not isinstance(stream, bool):
        raise InvalidArgumentError("stream", f"expected True or False, got {stream!r}")


def check_chat_params(params: Mapping[str, Any]) -> None:
    model = params.get("model")
    if model is None:
        raise InvalidArgumentError(
            "model", "is required (e.g. model='gpt-4o-mini')" + _misspelled("model", params)
        )
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgumentError("model", f"expected a non-empty string, got {model!r}")
    messages = params.get("messages")
    if messages is None:
        raise InvalidArgumentError(
            "messages",
            "is required: a list of {'role', 'content'} dicts" + _misspelled("messages", params),
        )
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, (list, tuple)):
        raise InvalidArgumentError(
            "messages", f"expected a list of dicts, got {type(messages).__name__}"
        )
    if not messages:
        raise InvalidArgumentError("messages", "must not be empty")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidArgumentError(where, f"expected a dict, got {type(message).__name__}")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidArgumentError(
                f"{where}.role", f"expected one of {sorted(_ROLES)}, got {role!r}"
            )
        if role == "tool" and "tool_call_id" not in message:
            raise InvalidArgumentError(f"{where}.tool_call_id", "a tool message needs one")
        content = message.get("content")
        if content is None and role not in ("assistant",):
            raise InvalidArgumentError(f"{where}.content", "is required")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidArgumentError(
                f"{where}.content",
                f"expected a string or a list of parts, got {type(content).__name__}",
            )
    stream = params.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidArgumentError("stream", f"expected True or False, got {stream!r}")


def _misspelled(name: str, params: Mapping[str, Any]) -> str:
    """A hint naming a given key that looks like ``name``: unknown parameters pass through to
    the API, so a misspelled required one is seen only as missing."""
    keys = [key for key in params if isinstance(key, str)]
    close = difflib.get_close_matches(name, keys, n=1, cutoff=0.75)
    return f"; got {close[0]!r}: a misspelling of {name!r}?" if close else ""
