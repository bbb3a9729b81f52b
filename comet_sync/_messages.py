"""Chat messages as type checkers see them: one ``TypedDict`` per role, as openai-python types
them, so ``{"role": "bot", ...}`` or a tool message without ``tool_call_id`` is an error before
it runs; and the message objects a reply carries (``reply.choices[0].message``), which a tool
loop appends to its history as they are.

Run time checks nothing here: a message passes to the API as it is (``_params`` turns response
objects into JSON). Written with ``total=False`` subclasses rather than ``NotRequired``, which
Python 3.9 and 3.10 lack without typing_extensions (not one of our dependencies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict, Union

from ._types import ChatCompletionMessage

__all__ = [
    "ChatCompletionAssistantMessageParam",
    "ChatCompletionDeveloperMessageParam",
    "ChatCompletionFunctionMessageParam",
    "ChatCompletionMessageParam",
    "ChatCompletionSystemMessageParam",
    "ChatCompletionToolMessageParam",
    "ChatCompletionUserMessageParam",
]

# A content part ({"type": "text", "text": ...}, {"type": "image_url", ...}, audio, files):
# their shapes grow with the API, so they are left open.
ContentPart = Mapping[str, Any]


class _Named(TypedDict, total=False):
    name: str


class _Said(_Named):
    # What a system, developer and user message say, written once for the three.
    content: str | Sequence[ContentPart]


class ChatCompletionSystemMessageParam(_Said):
    role: Literal["system"]


class ChatCompletionDeveloperMessageParam(_Said):
    role: Literal["developer"]


class ChatCompletionUserMessageParam(_Said):
    role: Literal["user"]


class _Assistant(TypedDict):
    role: Literal["assistant"]


class ChatCompletionAssistantMessageParam(_Assistant, total=False):
    # None with tool calls, as the API sends it back.
    content: str | Sequence[ContentPart] | None
    name: str
    refusal: str | None
    tool_calls: Sequence[Mapping[str, Any]]
    function_call: Mapping[str, Any] | None
    audio: Mapping[str, Any] | None


class ChatCompletionToolMessageParam(TypedDict):
    role: Literal["tool"]
    content: str | Sequence[ContentPart]
    tool_call_id: str


class ChatCompletionFunctionMessageParam(TypedDict):
    role: Literal["function"]
    content: str | None
    name: str


ChatCompletionMessageParam = Union[
    ChatCompletionSystemMessageParam,
    ChatCompletionDeveloperMessageParam,
    ChatCompletionUserMessageParam,
    ChatCompletionAssistantMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionFunctionMessageParam,
    # A reply's own message, appended to the history as it came (a tool loop).
    ChatCompletionMessage,
]
