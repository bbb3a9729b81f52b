"""What one call carries down and what it brings back up.

:class:`Call` is made once per call on one model (a fallback to another model is another
call) and handed to each of its attempts: the request, the options, the retry loop's state,
the record being written and the stop scope. Nothing of it travels sideways in a context
variable; only what users set around calls does (``deadline()``, and a ``map`` job's scope,
which the engine reads once, where it makes the call).

:class:`Answer` is what a JSON call returns: the decoded body with the head of the answer it
came in (status, reason, headers), for ``with_raw_response``; a stream carries its own head
(``Stream.response``).
"""

from __future__ import annotations

from typing import Any, NoReturn, SupportsIndex

from .._cancel import Scope
from .._config import CallOptions
from .._exceptions import ResponseSnapshot
from .._http.transport import Exchange
from .._records import CallLog
from .request import Request
from .retry import RetryingCall

__all__ = ["Answer", "Call"]


class Call:
    """One call on one model, as its attempts share it. Touched only by the thread running
    the call.

    The request's headers hold the API key (``Authorization``): the call's repr names the
    route, the model and the attempts so far, and a call cannot be pickled or copied (what
    a pickle of it would hold is the key).
    """

    __slots__ = ("log", "options", "request", "retry", "scope")

    def __init__(
        self,
        request: Request,
        options: CallOptions,
        retry: RetryingCall,
        log: CallLog,
        scope: Scope,
    ) -> None:
        self.request: Request = request  # as every attempt sends it
        self.options: CallOptions = options  # timeouts, retry settings, size limits
        self.retry: RetryingCall = (
            retry  # the retry loop's state: attempts made, the last error, budget
        )
        self.log: CallLog = log  # the record being written: statuses, time on the wire
        self.scope: Scope = scope  # what stops it: the client's, or its map's

    def __repr__(self) -> str:
        req = self.request
        return f"<Call {req.method} {req.route} model={req.model!r} tries={self.retry.tries}>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # pickle, copy and deepcopy all ask this first: a call is live state of one thread,
        # and its request carries the key.
        raise TypeError("a call in progress cannot be copied or pickled")


class Answer:
    """A JSON call's decoded body (``data``) and, when it came off the wire, its answer's head
    (``head``; None for an answer from the response cache, which has no head of its own)."""

    __slots__ = ("_exchange", "data")

    def __init__(self, data: dict[str, Any], exchange: Exchange | None = None) -> None:
        self.data: dict[str, Any] = data
        # The (closed) exchange the answer came in; its head is taken only when asked for, so
        # a call nobody asks the head of pays nothing for it.
        self._exchange: Exchange | None = exchange

    @property
    def head(self) -> ResponseSnapshot | None:
        return self._exchange.snapshot("") if self._exchange is not None else None

    def __repr__(self) -> str:
        status = self._exchange.status_code if self._exchange is not None else "cached"
        return f"<Answer {status}>"
