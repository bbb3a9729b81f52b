"""``with_raw_response``: an answer's status and headers next to its parsed body, as
openai-python gives them (``client.chat.completions.with_raw_response.create(...)``).

The call runs exactly as it would without it; the answer's head is handed out of the call path
through a context variable that the runner fills when a 2xx arrives, so no layer in between
has to carry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Callable, Generic, TypeVar

from .._exceptions import ResponseSnapshot

__all__ = ["RawClient", "RawResponse", "WithRawResponse", "raw_sink"]

T = TypeVar("T")

# Set while a with_raw_response call runs: receives the head of each 2xx answer.
raw_sink: ContextVar[Callable[[ResponseSnapshot], None] | None] = ContextVar(
    "comet_sync_raw_sink", default=None
)


class RawResponse(Generic[T]):
    """An answer's ``status_code``, ``headers`` and ``request_id``, and ``parse()`` for the
    object the call returns. ``http_response`` is the :class:`ResponseSnapshot` (None for an
    answer from the response cache, which has no head of its own)."""

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
        for name in ("x-request-id", "x-oneapi-request-id", "request-id"):
            value = self.headers.get(name)
            if value:
                return value
        return None

    def parse(self) -> T:
        return self._parsed

    def __repr__(self) -> str:
        return f"<RawResponse {self.status_code} request_id={self.request_id!r}>"


class WithRawResponse:
    """A resource's methods, returning :class:`RawResponse` instead of the parsed object."""

    def __init__(self, resource: Any) -> None:
        self._resource = resource

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._resource, name)
        if name.startswith("_") or not callable(method):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> RawResponse[Any]:
            heads: list[ResponseSnapshot] = []
            token = raw_sink.set(heads.append)
            try:
                parsed = method(*args, **kwargs)
            finally:
                raw_sink.reset(token)
            return RawResponse(heads[-1] if heads else None, parsed)

        return call


class _RawChat:
    def __init__(self, completions: Any) -> None:
        self.completions: WithRawResponse = WithRawResponse(completions)


class RawClient:
    """``client.with_raw_response``: ``.chat.completions``, ``.embeddings`` and ``.responses``
    returning :class:`RawResponse`."""

    def __init__(self, client: Any) -> None:
        self.chat: _RawChat = _RawChat(client.chat.completions)
        self.embeddings: WithRawResponse = WithRawResponse(client.embeddings)
        self.responses: WithRawResponse = WithRawResponse(client.responses)
