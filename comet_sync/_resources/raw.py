"""``with_raw_response`` and ``with_streaming_response``: an answer's status and headers next
to its parsed body, as openai-python gives them
(``client.chat.completions.with_raw_response.create(...)``, or
``with client.chat.completions.with_streaming_response.create(...) as response``).

The call runs exactly as it would without them, on a copy of the resource whose door hands the
head of the answer (which the engine returns with the body) to the raw view.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Callable, Generic, TypeVar

from .._call.streaming import Stream
from .._exceptions import ResponseSnapshot
from .._http.error_map import request_id_of

__all__ = [
    "RawResponse",
    "ResponseContextManager",
    "WithRawResponse",
    "WithStreamingResponse",
    "call_with_head",
]

T = TypeVar("T")


class RawResponse(Generic[T]):
    """An answer's ``status_code``, ``headers`` and ``request_id``, and ``parse()`` for the
    object the call returns. ``http_response`` is the :class:`ResponseSnapshot` (None for an
    answer from a cache, which has no head of its own). For a stream, ``parse()`` is the
    :class:`Stream` and ``close()`` closes it."""

    def __init__(self, head: ResponseSnapshot | None, parsed: T) -> None:
        self.http_response = head
        self._parsed = parsed

    @property
    def status_code(self) -> int:
        return self.http_response.status_code if self.http_response is not None else 200

    @property
    def headers(self) -> Mapping[str, str]:
        return self.http_response.headers if self.http_response is not None else {}

    @property
    def request_id(self) -> str | None:
        return request_id_of(self.headers)

    def parse(self) -> T:
        return self._parsed

    def close(self) -> None:
        """Give back the connection of a stream not read to its end (nothing to do for an
        answer read whole)."""
        if isinstance(self._parsed, Stream):
            self._parsed.close()

    def __repr__(self) -> str:
        return f"<RawResponse {self.status_code} request_id={self.request_id!r}>"


def call_with_head(resource: Any, name: str, *args: Any, **kwargs: Any) -> RawResponse[Any]:
    """Run ``resource``'s method ``name`` as it is, with the head of the 2xx answer it got
    (the last one: a call that falls back gets an answer from its last model only)."""
    heads: list[ResponseSnapshot] = []
    parsed = getattr(resource._capturing(heads.append), name)(*args, **kwargs)
    return RawResponse(heads[-1] if heads else None, parsed)


class ResponseContextManager(Generic[T]):
    """What ``with_streaming_response.<method>(...)`` returns: nothing is sent until the
    ``with`` block is entered, which gives the :class:`RawResponse` once the head has come
    (for ``stream=True``, with the first event: ``parse()`` is the stream, read inside the
    block; otherwise with the whole answer, since we read a JSON answer whole to retry a
    broken one). Leaving the block closes a stream not read to its end."""

    def __init__(self, send: Callable[[], RawResponse[T]]) -> None:
        self._send = send
        self._response: RawResponse[T] | None = None

    def __enter__(self) -> RawResponse[T]:
        self._response = self._send()
        return self._response

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.close()


class _MethodView:
    """A resource's public methods, each sending through ``call_with_head`` and handing the
    send to ``_wrap`` (the one thing the two views below do differently)."""

    def __init__(self, resource: Any) -> None:
        self._resource = resource

    def __getattr__(self, name: str) -> Any:
        _public_method(self._resource, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(lambda: call_with_head(self._resource, name, *args, **kwargs))

        return call

    def _wrap(self, send: Callable[[], RawResponse[Any]]) -> Any:
        raise NotImplementedError


class WithRawResponse(_MethodView):
    """A resource's methods, returning :class:`RawResponse` instead of the parsed object."""

    def _wrap(self, send: Callable[[], RawResponse[Any]]) -> RawResponse[Any]:
        return send()


class WithStreamingResponse(_MethodView):
    """A resource's methods, returning a :class:`ResponseContextManager`."""

    def _wrap(self, send: Callable[[], RawResponse[Any]]) -> ResponseContextManager[Any]:
        return ResponseContextManager(send)


def _public_method(resource: Any, name: str) -> Callable[..., Any]:
    method = getattr(resource, name)
    if name.startswith("_") or not callable(method):
        raise AttributeError(name)
    return method  # type: ignore[no-any-return]
