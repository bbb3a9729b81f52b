"""``client.responses``: the Responses API (``POST /responses``), which CometAPI recommends for
some models (the o-series, GPT-5 Pro). The same limiter, retries, fallbacks, records and cache
as chat completions; only the body and the answer differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Literal, overload

from .._call.fallback import each_model, json_over_chain
from .._call.streaming import ResponseStream
from .._config import TimeoutArg
from .._exceptions import InvalidArgumentError
from .._params import NOT_GIVEN, NotGiven, ResponseCreateArgs, prepare_call
from .._records import RequestRecord
from .._types import Response
from .raw import WithRawResponse, WithStreamingResponse

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._client import CallPath
    from .._config import CallOptions

__all__ = ["ROUTE", "Responses"]

ROUTE = "/responses"


class Responses:
    """``client.responses``. Shared by every thread of the client, like the client itself."""

    def __init__(self, calls: CallPath) -> None:
        self._calls = calls

    @property
    def with_raw_response(self) -> WithRawResponse:
        """The same methods, returning a ``RawResponse`` (``.status_code``, ``.headers``,
        ``.request_id``, ``.parse()``) as openai-python's ``with_raw_response`` does."""
        return WithRawResponse(self)

    @property
    def with_streaming_response(self) -> WithStreamingResponse:
        """The same methods as context managers giving a ``RawResponse`` (openai-python's
        ``with_streaming_response``): the call is sent when the ``with`` block is entered."""
        return WithStreamingResponse(self)

    @overload
    def create(
        self, *, stream: Literal[True], **params: Unpack[ResponseCreateArgs]
    ) -> ResponseStream: ...

    @overload
    def create(
        self, *, stream: Literal[False] = False, **params: Unpack[ResponseCreateArgs]
    ) -> Response: ...

    @overload
    def create(
        self, *, stream: bool, **params: Unpack[ResponseCreateArgs]
    ) -> Response | ResponseStream: ...

    def create(
        self,
        *,
        stream: bool = False,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        total_timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        fallbacks: Sequence[str] | None = None,
        **params: Any,
    ) -> Response | ResponseStream:
        """Create a response: ``params`` is the body (``model``, ``input`` — text or a list of
        input items — ``instructions``, ``tools``, ...). The options are those of
        ``chat.completions.create``.

        >>> reply = client.responses.create(model="gpt-5", input="Say hello.")
        >>> reply.output_text
        'Hello.'

        With ``stream=True`` it returns a :class:`ResponseStream` of typed events once the
        first has arrived (retries and fallbacks happen only before that).
        """
        if stream:
            params["stream"] = True
        payload, options, chain = self._prepare(
            params,
            timeout=timeout,
            max_retries=max_retries,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
            fallbacks=fallbacks,
        )
        calls = self._calls
        if stream:
            return each_model(
                calls,
                chain,
                payload,
                options,
                lambda body, opts, fb: calls.stream(
                    ROUTE, body, options=opts, fallback=fb, kind=ResponseStream
                ),
            )  # type: ignore[return-value]
        return Response(json_over_chain(calls, ROUTE, ("output",), chain, payload, options))

    def _create_raw(
        self, params: dict[str, Any], *, sink: Callable[[RequestRecord], None]
    ) -> dict[str, Any]:
        """One non-streamed call from a request body: the raw JSON (for the batch engine)."""
        fallbacks = params.pop("fallbacks", None)
        payload, options, chain = self._prepare(
            params, streaming="a batch job", fallbacks=fallbacks
        )
        return json_over_chain(self._calls, ROUTE, ("output",), chain, payload, options, sink=sink)

    def _prepare(
        self, params: dict[str, Any], **options: Any
    ) -> tuple[dict[str, Any], CallOptions, list[str]]:
        """Check everything and build the body; nothing is sent if this raises."""
        return prepare_call(self._calls, params, check_response_params, **options)


def check_response_params(params: Mapping[str, Any]) -> None:
    model = params.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgumentError("model", f"expected a non-empty string, got {model!r}")
    given = params.get("input")
    if given is None:
        raise InvalidArgumentError("input", "is required: text, or a list of input items")
    if isinstance(given, str):
        if not given:
            raise InvalidArgumentError("input", "must not be empty")
    elif not isinstance(given, list) or not given:
        raise InvalidArgumentError("input", "expected text or a non-empty list of input items")
    stream = params.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidArgumentError("stream", f"expected True or False, got {stream!r}")
