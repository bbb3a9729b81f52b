"""``client.responses``: the Responses API (``POST /responses``), which CometAPI recommends for
some models (the o-series, GPT-5 Pro). The same limiter, retries, fallbacks, records and cache
as chat completions; only the body and the answer differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from .._call.streaming import ResponseStream
from .._config import TimeoutArg
from .._exceptions import InvalidArgumentError
from .._params import NOT_GIVEN, NotGiven, ResponseCreateArgs
from .._types import Response
from .._validation import check_stream
from .resource import Resource

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Responses"]


class Responses(Resource):
    """``client.responses``. Shared by every thread of the client, like the client itself."""

    route: ClassVar[str] = "/responses"
    required: ClassVar[tuple[str, ...]] = ("output",)

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
        check_stream(stream)
        if stream:
            params["stream"] = True
        call = self._prepare(
            params,
            timeout=timeout,
            max_retries=max_retries,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
            fallbacks=fallbacks,
        )
        if stream:
            return self._door.post_stream(call, ResponseStream)
        return Response(self._door.post_json(call, self.required))

    def _check(self, body: Mapping[str, Any]) -> None:
        check_response_params(body)


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
