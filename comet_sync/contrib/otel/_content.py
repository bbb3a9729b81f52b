"""Message content as the conventions record it (``gen_ai.input.messages``,
``gen_ai.output.messages``: JSON arrays of messages made of typed parts), only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for it. Pure: no OpenTelemetry.

What is captured is what the client holds: the request the caller wrote, and the answer
after the client scrubbed the key from it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ENV", "capture_enabled", "input_messages", "output_messages"]

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# "true" in the reference instrumentation's default mode; the newer modes that put content on
# the span say so too. (event_only and no_content keep it off the span.)
_ON = frozenset({"true", "span_only", "span_and_event"})


def capture_enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in _ON


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):  # chat's content parts, the Responses API's input/output
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "content": part})
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append({"type": "text", "content": part["text"]})
    return parts


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        arguments: Any = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):  # else kept as the text the model wrote
                arguments = json.loads(arguments)
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name") or "",
                "arguments": arguments,
            }
        )
    return parts


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = str(message.get("role") or "user")
    if role == "tool":
        parts: list[dict[str, Any]] = [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content"),
            }
        ]
    else:
        parts = _tool_calls(message.get("tool_calls")) + _text_parts(message.get("content"))
    return {"role": role, "parts": parts}


def input_messages(payload: Mapping[str, Any]) -> str | None:
    """What was sent: chat's ``messages``, the Responses API's ``input`` (and its
    ``instructions`` as a system message), as a JSON array; None when there is none."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        return _dumps([_message(m) for m in messages if isinstance(m, Mapping)])
    given = payload.get("input")
    if given is None or "messages" in payload:
        return None
    found: list[dict[str, Any]] = []
    instructions = payload.get("instructions")
    if isinstance(instructions, str):
        found.append({"role": "system", "parts": _text_parts(instructions)})
    if isinstance(given, str):
        found.append({"role": "user", "parts": _text_parts(given)})
    elif isinstance(given, list):
        found += [_message(m) for m in given if isinstance(m, Mapping)]
    return _dumps(found) if found else None


def output_messages(answer: Mapping[str, Any], reasons: list[str]) -> str | None:
    """What came back: each choice's message (chat), or the output messages and function
    calls (the Responses API), with the finish reason."""
    choices = answer.get("choices")
    found: list[dict[str, Any]] = []
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, Mapping) and isinstance(choice.get("message"), Mapping):
                message = _message(choice["message"])
                message["finish_reason"] = str(choice.get("finish_reason") or "error")
                found.append(message)
        return _dumps(found)
    output = answer.get("output")
    if not isinstance(output, list):
        return None
    parts: list[dict[str, Any]] = []
    for item in output:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "message":
            parts += _text_parts(item.get("content"))
        elif item.get("type") == "function_call":
            parts += _tool_calls(
                [{"id": item.get("call_id"), "function": item}]  # (name and arguments)
            )
    reason = reasons[0] if reasons else "stop"
    return _dumps([{"role": "assistant", "parts": parts, "finish_reason": reason}])
