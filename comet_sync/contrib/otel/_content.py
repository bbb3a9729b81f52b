"""Message content as the conventions record it, only when asked. Pure: no OpenTelemetry.

Where content goes, and whether each call gets an event, is read from the environment as the
conventions' reference instrumentation reads it (opentelemetry-instrumentation-openai-v2 on
opentelemetry-util-genai):

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``span_only``: ``gen_ai.input.messages`` and ``gen_ai.output.messages`` on the call's span,
    as JSON text. ``event_only``: the same messages, structured, on one
    ``gen_ai.client.inference.operation.details`` event (a log record) per chat call, and none
    on the span. ``span_and_event``: both. ``true``: on the span (what it meant here before
    the modes existed; the reference's current version reads it as no content). Unset or
    anything else: no content anywhere.
``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT``
    ``true`` or ``false`` overrides whether the event is emitted (``true`` with no content
    mode: the event carries the call's attributes without messages); unset, the event comes
    with ``event_only`` and ``span_and_event``.

What is captured is what the client holds: the request the caller wrote, and the answer after
the client scrubbed the key from it (the caller scrubs both once more: a prompt may quote the
key, and a tool call's arguments are JSON text decoded here).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "EMIT_ENV",
    "ENV",
    "Capture",
    "capture_from_env",
    "capture_of",
    "dumps",
    "input_messages",
    "output_messages",
]

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
EMIT_ENV = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"

_ON_SPAN = frozenset({"true", "span_only", "span_and_event"})
_ON_EVENT = frozenset({"event_only", "span_and_event"})

# A message, or a part of one, as the conventions' JSON schema has it.
Message = dict[str, Any]


class Capture(NamedTuple):
    """What an instrumentation records beyond the attributes (all off by default)."""

    span: bool = False  # the messages on the call's span
    event: bool = False  # one details event per chat call
    event_content: bool = False  # the messages in that event

    @property
    def content(self) -> bool:
        """Whether the messages are read at all."""
        return self.span or self.event_content


def capture_of(mode: str | bool | None, emit_event: str | None = None) -> Capture:
    """The capture a content mode asks (a mode name, or True for the span, False or None for
    nothing) and ``emit_event`` (``"true"`` / ``"false"``, anything else: the mode decides)."""
    if isinstance(mode, bool) or mode is None:
        span, event_content = bool(mode), False
    else:
        mode = mode.strip().lower()
        span, event_content = mode in _ON_SPAN, mode in _ON_EVENT
    emit = (emit_event or "").strip().lower()
    event = True if emit == "true" else False if emit == "false" else event_content
    return Capture(span=span, event=event, event_content=event and event_content)


def capture_from_env() -> Capture:
    return capture_of(os.environ.get(ENV, ""), os.environ.get(EMIT_ENV))


def dumps(value: Any) -> str:
    """The JSON text a span attribute holds (the reference's separators)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _text_parts(content: Any) -> list[Message]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[Message] = []
    if isinstance(content, list):  # chat's content parts, the Responses API's input/output
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "content": part})
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append({"type": "text", "content": part["text"]})
    return parts


def _tool_calls(calls: Any) -> list[Message]:
    parts: list[Message] = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        arguments: Any = function.get("arguments")
        if arguments == "":
            arguments = None  # (none given, as the reference records it)
        elif isinstance(arguments, str):
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


def _message(message: Mapping[str, Any]) -> Message:
    role = str(message.get("role") or "user")
    if role == "tool":
        parts: list[Message] = [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content"),
            }
        ]
    else:
        parts = _tool_calls(message.get("tool_calls")) + _text_parts(message.get("content"))
    return {"role": role, "parts": parts}


def input_messages(payload: Mapping[str, Any]) -> list[Message] | None:
    """What was sent: chat's ``messages``, the Responses API's ``input`` (and its
    ``instructions`` as a system message); None when there is none."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        return [_message(m) for m in messages if isinstance(m, Mapping)] or None
    given = payload.get("input")
    if given is None or "messages" in payload:
        return None
    found: list[Message] = []
    instructions = payload.get("instructions")
    if isinstance(instructions, str):
        found.append({"role": "system", "parts": _text_parts(instructions)})
    if isinstance(given, str):
        found.append({"role": "user", "parts": _text_parts(given)})
    elif isinstance(given, list):
        found += [_message(m) for m in given if isinstance(m, Mapping)]
    return found or None


def output_messages(answer: Mapping[str, Any], reasons: list[str]) -> list[Message] | None:
    """What came back: each choice's message (chat, a stream's assembled), or the output
    messages and function calls (the Responses API), with the finish reason."""
    choices = answer.get("choices")
    found: list[Message] = []
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, Mapping) and isinstance(choice.get("message"), Mapping):
                message = _message(choice["message"])
                message["finish_reason"] = str(choice.get("finish_reason") or "error")
                found.append(message)
        return found or None
    output = answer.get("output")
    if not isinstance(output, list):
        return None
    parts: list[Message] = []
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
    return [{"role": "assistant", "parts": parts, "finish_reason": reason}]
