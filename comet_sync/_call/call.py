"""What one logical call carries down and what it brings back up.

:class:`Answer` is what a JSON call returns: the decoded body with the head of the answer it
came in (status, reason, headers), for ``with_raw_response``; a stream carries its own head
(``Stream.response``).
"""

from __future__ import annotations

from typing import Any

from .._exceptions import ResponseSnapshot
from .._http.transport import Exchange

__all__ = ["Answer"]


class Answer:
    """A JSON call's decoded body (``data``) and, when it came off the wire, its answer's head
    (``head``; None for an answer from the response cache, which has no head of its own)."""

    __slots__ = ("_exchange", "data")

    def __init__(self, data: dict[str, Any], exchange: Exchange | None = None) -> None:
        self.data = data
        # The (closed) exchange the answer came in; its head is taken only when asked for, so
        # a call nobody asks the head of pays nothing for it.
        self._exchange = exchange

    @property
    def head(self) -> ResponseSnapshot | None:
        return self._exchange.snapshot("") if self._exchange is not None else None

    def __repr__(self) -> str:
        status = self._exchange.status_code if self._exchange is not None else "cached"
        return f"<Answer {status}>"
