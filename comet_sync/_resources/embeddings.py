"""``client.embeddings``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from .._config import TimeoutArg
from .._exceptions import InvalidArgumentError
from .._params import NOT_GIVEN, NotGiven, plain_params
from .._records import RequestRecord
from .._types import CreateEmbeddingResponse
from .raw import WithRawResponse, WithStreamingResponse

if TYPE_CHECKING:
    from .._client import CallPath

__all__ = ["Embeddings"]

ROUTE = "/embeddings"


class Embeddings:
    """``client.embeddings``."""

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

    def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        total_timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> CreateEmbeddingResponse:
        """Embed a string or a list of them: ``.data[i].embedding``, ``.usage``.

        >>> client.embeddings.create(model="text-embedding-3-small", input="hello")
        """
        payload = _embedding_payload(
            {"model": model, "input": input, **params, **(extra_body or {})}
        )
        options = self._calls.options(
            timeout=timeout,
            max_retries=max_retries,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return CreateEmbeddingResponse(
            self._calls.json("POST", ROUTE, payload, options=options, required=("data",))
        )

    def _create_raw(
        self, params: dict[str, Any], *, sink: Callable[[RequestRecord], None]
    ) -> dict[str, Any]:
        """One call from a request body: the answer's raw JSON (for the batch engine)."""
        payload = _embedding_payload(params)
        options = self._calls.options()
        return self._calls.json(
            "POST", ROUTE, payload, options=options, required=("data",), sink=sink
        )


def _embedding_payload(params: dict[str, Any]) -> dict[str, Any]:
    """The body, checked: nothing is sent if this raises."""
    params = plain_params(params)
    model, input = params.get("model"), params.get("input")
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgumentError("model", f"expected a non-empty string, got {model!r}")
    if isinstance(input, str):
        if not input:
            raise InvalidArgumentError("input", "must not be empty")
    elif not isinstance(input, list) or not input:
        raise InvalidArgumentError("input", "expected a string or a non-empty list")
    elif not all(isinstance(item, (str, list)) for item in input):
        raise InvalidArgumentError("input", "list items must be strings or token lists")
    return params
