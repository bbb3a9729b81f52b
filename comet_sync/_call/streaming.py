"""Streamed chat completions: an iterator of chunks that always gives back what it holds.

A :class:`Stream` holds its request's concurrency permit and its connection until the stream
is exhausted, closed, or garbage-collected, whichever comes first: a caller who breaks out
of the loop, or whose view raises, leaks nothing. The call's record is written once, when the
stream ends, with the time to the first chunk and the chunk count.

A stream that ends without ``data: [DONE]``, or whose connection breaks, raises
``APIConnectionError`` saying how many chunks arrived: never a silent, truncated success. A
stream that sends no event for the read timeout (keep-alive comments do not count: a gateway
sends them while the model behind it is stuck) raises ``APITimeoutError``, as does one that
outlives the call's ``total_timeout``.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Callable, NoReturn, SupportsIndex, TypeVar

from .._exceptions import APIError, CometError, RequestSnapshot, ResponseSnapshot
from .._http.error_map import (
    bad_event,
    event_too_large,
    stream_cut,
    stream_error_event,
    stream_unfinished,
)
from .._http.sse import Event, EventTooLargeError
from .._http.transport import Exchange
from .._rate.protocol import PermitProtocol as Permit
from .._types import ChatCompletion, ChatCompletionChunk, Response, ResponseStreamEvent

__all__ = ["ResponseStream", "Stream"]


class _Ending:
    """What a stream must do once when it ends, however it ends. It holds no reference to the
    Stream itself, so that the garbage collector can run it for an abandoned stream."""

    def __init__(self, exchange: Exchange, permit: Permit, finish: Callable[..., None]) -> None:
        self.exchange = exchange
        self.permit = permit
        self.finish = finish
        self.chunks = 0
        self.first_chunk_at: float | None = None
        self.usage: dict[str, Any] | None = None
        self.error: BaseException | None = None
        # What the stream said, for an observer: its chunks joined, or a Responses stream's
        # final response.
        self.builder: _CompletionBuilder | None = None
        self.final: dict[str, Any] | None = None

    def __call__(self) -> None:
        # Closing a half-read response closes its socket, so the pool never reuses a
        # connection with an unread body on it.
        self.exchange.close()
        total = self.usage.get("total_tokens") if self.usage else None
        # A stream that broke is no success for the limiter to grow on: report no status.
        status = self.exchange.status_code if self.error is None else None
        self.permit.release(status, total_tokens=total if isinstance(total, int) else None)
        self.finish(
            error=self.error,
            usage=self.usage,
            chunks=self.chunks,
            first_chunk_at=self.first_chunk_at,
            answer=self.answer,
        )

    def answer(self) -> dict[str, Any] | None:
        """The answer as one JSON object (built only when an observer asks)."""
        if self.final is not None:
            return self.final
        return self.builder.data() if self.builder is not None else None


_S = TypeVar("_S", bound="Stream")


class Stream:
    """An iterator of :class:`ChatCompletionChunk`, and a context manager.

    >>> with client.chat.completions.create(model="gpt-4o-mini", messages=msgs,
    ...                                     stream=True) as stream:
    ...     for text in stream.text_deltas():
    ...         print(text, end="", flush=True)

    One thread iterates a stream; ``close()`` may come from any thread.
    """

    # What a complete stream ends with, for the error when it ends without it.
    _END_MARK = "data: [DONE]"

    def __init__(
        self,
        *,
        exchange: Exchange,
        permit: Permit,
        events: Iterator[Event],
        first: Event,
        route: str,
        clock: Callable[[], float],
        idle: float,
        finish: Callable[..., None],
        request: RequestSnapshot,
    ) -> None:
        self._events = events
        self._request = request
        self._pending: Event | None = first
        self._route = route
        self._exchange = exchange
        self._head = exchange.snapshot("")
        # Each event buys the stream another read timeout, never past the call's own end.
        self._idle = idle
        exchange.attempt.rearm(idle)
        self._lock = threading.Lock()
        self._ended = False
        self._ending = _Ending(exchange, permit, finish)
        self._ending.first_chunk_at = clock()
        self._finalizer = weakref.finalize(self, self._ending)
        self._accumulator = _CompletionBuilder()
        self._ending.builder = self._accumulator

    @property
    def chunks_received(self) -> int:
        return self._ending.chunks

    @property
    def response(self) -> ResponseSnapshot:
        """The answer's head: ``status_code``, ``reason``, ``headers`` (scrubbed of the key)."""
        return self._head

    # -- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        if self._ended:
            raise StopIteration
        try:
            event = self._next_event()
            self._exchange.attempt.rearm(self._idle)
            if event.data.strip() == "[DONE]":
                self._finished()
                raise StopIteration
            payload = self._parse(event)
        except CometError as exc:  # an API error, or the client closed under it
            self._raise_ended(exc)
        self._ending.chunks += 1
        # The accumulator reads the decoded JSON itself, never a copy: a chunk is read-only.
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._ending.usage = usage
        self._accumulator.add(payload)
        return ChatCompletionChunk(payload)

    def _raise_ended(self, exc: CometError) -> NoReturn:
        """End the stream on ``exc`` and raise: a broken or silent connection says how far the
        stream got (a timeout stays a timeout), chained to ``exc``; any other error as it is.
        One place for both streams' ``__next__``, so they end alike."""
        ended = self._named(stream_cut(self._route, self._ending.chunks, exc))
        self._end(ended)
        if ended is exc:
            raise exc
        raise ended from exc

    def _named(self, exc: CometError) -> CometError:
        """``exc`` naming this stream's request (openai-python's ``e.request``), as every
        error of a call does."""
        if isinstance(exc, APIError):
            exc.request = self._request
        return exc

    def _next_event(self) -> Event:
        if self._pending is not None:
            event, self._pending = self._pending, None
            return event
        try:
            return next(self._events)
        except StopIteration:
            raise stream_unfinished(self._END_MARK) from None
        except EventTooLargeError as exc:
            raise event_too_large(self._exchange, self._route, exc) from None

    def _parse(self, event: Event) -> dict[str, Any]:
        """A chunk's JSON object; an error event raises."""
        payload = self._decode(event)
        error = payload.get("error")
        if error is not None:
            raise self._error_event(error)
        return payload

    def _decode(self, event: Event) -> dict[str, Any]:
        """An event's JSON object, or our exception saying what it is instead."""
        try:
            payload = json.loads(event.data)
        except ValueError:
            raise bad_event(self._exchange, self._route, event.data) from None
        if not isinstance(payload, dict):
            raise bad_event(self._exchange, self._route, None)
        # Scrubbed before anyone reads it: the chunk, the accumulator, an error event.
        return self._exchange.clean_json(payload, event.data)  # type: ignore[no-any-return]

    def _error_event(self, error: Any) -> APIError:
        return stream_error_event(self._exchange, self._route, error, self._ending.chunks)

    # -- helpers -----------------------------------------------------------------------------

    def text_deltas(self) -> Iterator[str]:
        """The text of the first choice, piece by piece, skipping empty deltas."""
        for chunk in self:
            for choice in chunk.choices:
                if (choice.index or 0) == 0 and choice.delta is not None:
                    text = choice.delta.content
                    if text:
                        yield text

    def get_final_completion(self) -> ChatCompletion:
        """Read the rest of the stream and return it assembled as one :class:`ChatCompletion`:
        content and tool calls joined from their fragments, finish reasons, usage if sent."""
        for _ in self:
            pass
        return self._accumulator.completion()

    # -- ending ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading: the connection is closed and the concurrency slot given back."""
        self._end(None)

    def _finished(self) -> None:
        """The stream reached its end mark: what is left of the body (the chunked encoding's
        last bytes) is read, so that the connection goes back to the pool for the next
        call instead of being closed (over TLS, a handshake per stream)."""
        self._exchange.read_rest()
        self._end(None)

    def _end(self, error: BaseException | None) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._ending.error = error
        self._finalizer()

    def __enter__(self: _S) -> _S:
        # The subclass's own type: ``with responses.create(stream=True) as s`` iterates events.
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return f"<Stream {self._route} {state}, {self._ending.chunks} chunk(s)>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # pickle, copy and deepcopy all ask this first. A stream is a socket being read and a
        # concurrency slot held: a copy would be a second reader of one connection (a shallow
        # one used to be made silently), and a pickle has no connection to carry.
        raise TypeError(
            f"a {type(self).__name__} is a live connection and cannot be copied or pickled: "
            "keep its events, or what get_final_completion() / get_final_response() returns"
        )


_HEAD_KEYS = ("id", "created", "model", "system_fingerprint")


class _CompletionBuilder:
    """Joins chunks back into one completion."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, data: dict[str, Any]) -> None:
        """Fold one chunk's JSON in (read, never kept: every field taken is a string, a number
        or a dict of them copied)."""
        head = self.head
        if len(head) < len(_HEAD_KEYS):  # the first value of each stands for the answer
            for key in _HEAD_KEYS:
                if key not in head and data.get(key) is not None:
                    head[key] = data[key]
        if isinstance(data.get("usage"), dict):
            self.usage = dict(data["usage"])
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            acc = self.choices.setdefault(
                index,
                {
                    "index": index,
                    "message": {"role": "assistant", "content": None},
                    "finish_reason": None,
                },
            )
            delta = choice.get("delta") or {}
            message = acc["message"]
            if delta.get("role"):
                message["role"] = delta["role"]
            if delta.get("content"):
                message["content"] = (message["content"] or "") + delta["content"]
            if delta.get("refusal"):
                message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
            for call in delta.get("tool_calls") or []:
                self._add_tool_call(message, call)
            if choice.get("finish_reason"):
                acc["finish_reason"] = choice["finish_reason"]

    @staticmethod
    def _add_tool_call(message: dict[str, Any], fragment: dict[str, Any]) -> None:
        calls = message.setdefault("tool_calls", [])
        index = fragment.get("index", len(calls))
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = calls[index]
        if fragment.get("id"):
            call["id"] = fragment["id"]
        if fragment.get("type"):
            call["type"] = fragment["type"]
        function = fragment.get("function") or {}
        if function.get("name"):
            call["function"]["name"] += function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"object": "chat.completion", **self.head}
        data["choices"] = [self.choices[i] for i in sorted(self.choices)]
        if self.usage is not None:
            data["usage"] = self.usage
        return data

    def completion(self) -> ChatCompletion:
        return ChatCompletion(self.data())


class ResponseStream(Stream):
    """A streamed Responses API call: an iterator of :class:`ResponseStreamEvent` (``.type``
    says which), ending after ``response.completed`` (or ``response.incomplete``); an
    ``error`` or ``response.failed`` event raises the matching API error.

    >>> with client.responses.create(model="gpt-5", input="Hi", stream=True) as stream:
    ...     for text in stream.text_deltas():
    ...         print(text, end="")
    """

    _END_MARK = "response.completed"
    _FINAL = frozenset({"response.completed", "response.incomplete"})

    def __iter__(self) -> ResponseStream:
        return self

    def __next__(self) -> ResponseStreamEvent:  # type: ignore[override]
        if self._ended:
            raise StopIteration
        try:
            event = self._next_event()
            self._exchange.attempt.rearm(self._idle)
            payload = self._decode(event)
            kind = payload.get("type") or event.event
            if kind == "error":
                raise self._error_event(payload.get("error") or payload)
            if kind == "response.failed":
                response = payload.get("response")
                failure = response.get("error") if isinstance(response, dict) else None
                raise self._error_event(failure or {"message": "the response failed"})
        except CometError as exc:  # an API error, or the client closed under it
            self._raise_ended(exc)
        self._ending.chunks += 1
        item = ResponseStreamEvent(payload)
        if kind in self._FINAL:
            response = payload.get("response")
            if isinstance(response, dict):
                self._final = Response(response)
                self._ending.final = response
                usage = response.get("usage")
                self._ending.usage = usage if isinstance(usage, dict) else None
            self._finished()
        return item

    _final: Response | None = None

    def text_deltas(self) -> Iterator[str]:
        """The output text, piece by piece."""
        for event in self:
            if event.type == "response.output_text.delta" and event.delta:
                yield event.delta

    def get_final_response(self) -> Response:
        """Read the rest of the stream and return the completed :class:`Response`."""
        for _ in self:
            pass
        if self._final is None:
            raise self._named(
                stream_cut(self._route, self._ending.chunks, stream_unfinished("a response"))
            )
        return self._final
