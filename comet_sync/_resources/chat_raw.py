"""``chat.completions.with_raw_response`` and ``.with_streaming_response``, typed: what each
returns depends on ``stream`` and ``response_format`` as the method's own result does, so a
checker knows that ``parse()`` of a streamed raw response is a :class:`Stream`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

from .._call.streaming import Stream
from .._params import NOT_GIVEN, ChatCreateArgs, ChatParseArgs, NotGiven
from .._types import ChatCompletion
from .raw import (
    RawResponse,
    ResponseContextManager,
    WithRawResponse,
    WithStreamingResponse,
    call_with_head,
)
from .structured import ParsedChatCompletion

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .chat import Chat, Completions
    from .resource import Resource

__all__ = [
    "ChatWithRawResponse",
    "ChatWithStreamingResponse",
    "ClientWithRawResponse",
    "ClientWithStreamingResponse",
    "CompletionsWithRawResponse",
    "CompletionsWithStreamingResponse",
]

M = TypeVar("M")


class Resources(Protocol):
    """A client's resources (a client's or a view's): what its raw views are made of."""

    @property
    def chat(self) -> Chat: ...

    @property
    def embeddings(self) -> Resource: ...

    @property
    def responses(self) -> Resource: ...

    @property
    def models(self) -> Resource: ...


class CompletionsWithRawResponse:
    """``create`` and ``parse``, each returning a :class:`RawResponse` of what it returns."""

    def __init__(self, completions: Completions) -> None:
        self._completions = completions

    @overload
    def create(
        self, *, stream: Literal[True], **params: Unpack[ChatCreateArgs]
    ) -> RawResponse[Stream]: ...

    @overload
    def create(
        self, *, stream: Literal[False] = False, **params: Unpack[ChatCreateArgs]
    ) -> RawResponse[ChatCompletion]: ...

    @overload
    def create(
        self, *, stream: bool, **params: Unpack[ChatCreateArgs]
    ) -> RawResponse[ChatCompletion | Stream]: ...

    def create(self, **params: Any) -> RawResponse[Any]:
        return call_with_head(self._completions, "create", **params)

    @overload
    def parse(
        self, *, response_format: type[M], **params: Unpack[ChatParseArgs]
    ) -> RawResponse[ParsedChatCompletion[M]]: ...

    @overload
    def parse(
        self,
        *,
        response_format: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        **params: Unpack[ChatParseArgs],
    ) -> RawResponse[ParsedChatCompletion[None]]: ...

    def parse(self, **params: Any) -> RawResponse[Any]:
        return call_with_head(self._completions, "parse", **params)


class CompletionsWithStreamingResponse:
    """``create`` and ``parse``, each returning a context manager that sends the call when
    entered and gives a :class:`RawResponse` (see :class:`ResponseContextManager`)."""

    def __init__(self, completions: Completions) -> None:
        self._completions = completions

    @overload
    def create(
        self, *, stream: Literal[True], **params: Unpack[ChatCreateArgs]
    ) -> ResponseContextManager[Stream]: ...

    @overload
    def create(
        self, *, stream: Literal[False] = False, **params: Unpack[ChatCreateArgs]
    ) -> ResponseContextManager[ChatCompletion]: ...

    @overload
    def create(
        self, *, stream: bool, **params: Unpack[ChatCreateArgs]
    ) -> ResponseContextManager[ChatCompletion | Stream]: ...

    def create(self, **params: Any) -> ResponseContextManager[Any]:
        return ResponseContextManager(lambda: call_with_head(self._completions, "create", **params))

    @overload
    def parse(
        self, *, response_format: type[M], **params: Unpack[ChatParseArgs]
    ) -> ResponseContextManager[ParsedChatCompletion[M]]: ...

    @overload
    def parse(
        self,
        *,
        response_format: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        **params: Unpack[ChatParseArgs],
    ) -> ResponseContextManager[ParsedChatCompletion[None]]: ...

    def parse(self, **params: Any) -> ResponseContextManager[Any]:
        return ResponseContextManager(lambda: call_with_head(self._completions, "parse", **params))


class ChatWithRawResponse:
    """``client.chat.with_raw_response``: ``.completions``."""

    def __init__(self, completions: Completions) -> None:
        self.completions: CompletionsWithRawResponse = CompletionsWithRawResponse(completions)


class ChatWithStreamingResponse:
    """``client.chat.with_streaming_response``: ``.completions``."""

    def __init__(self, completions: Completions) -> None:
        self.completions: CompletionsWithStreamingResponse = CompletionsWithStreamingResponse(
            completions
        )


class ClientWithRawResponse:
    """``client.with_raw_response``: ``.chat.completions``, ``.embeddings``, ``.responses``
    and ``.models``, their methods returning a :class:`RawResponse`."""

    def __init__(self, client: Resources) -> None:
        self.chat: ChatWithRawResponse = client.chat.with_raw_response
        self.embeddings: WithRawResponse = client.embeddings.with_raw_response
        self.responses: WithRawResponse = client.responses.with_raw_response
        self.models: WithRawResponse = client.models.with_raw_response


class ClientWithStreamingResponse:
    """``client.with_streaming_response``: the same resources, their methods returning a
    context manager that gives a :class:`RawResponse`."""

    def __init__(self, client: Resources) -> None:
        self.chat: ChatWithStreamingResponse = client.chat.with_streaming_response
        self.embeddings: WithStreamingResponse = client.embeddings.with_streaming_response
        self.responses: WithStreamingResponse = client.responses.with_streaming_response
        self.models: WithStreamingResponse = client.models.with_streaming_response
