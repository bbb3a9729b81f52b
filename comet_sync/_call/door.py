"""The one door from the resources (chat, responses, embeddings, models) to the engine, as
openai-python's resources have ``_post``: a call is prepared once (body checked, options
built, the models it tries chosen), then posted over its model chain, as JSON or as a stream.

A door belongs to one client or ``with_options`` view and holds that one's defaults, so every
resource built on it uses them. The engine returns each answer with its head; a door made for
a ``with_raw_response`` call (:meth:`Door.capturing`) hands that head to the raw view, and
every other door drops it. What it runs on (the engine, the executors, the scope) it
reaches through :class:`Runtime`, looked up on every call: a forked child rebuilds all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar, cast

from .. import _cancel
from .._clock import Clock
from .._config import CallOptions, RetryConfig, Timeout, TimeoutArg, check_headers
from .._exceptions import APIError, APITimeoutError, InvalidArgumentError, ResponseSnapshot
from .._params import NOT_GIVEN, NotGiven, check_query, is_not_given, plain_params
from .._records import RequestRecord
from .call import Answer
from .deadline import time_left
from .engine import CallRunner
from .fallback import Fallbacks, chain_of, fallback_reason
from .streaming import Stream

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._params import OptionParams

__all__ = ["CallDefaults", "Door", "Prepared", "Runtime"]

logger = logging.getLogger("comet_sync")
T = TypeVar("T")
S = TypeVar("S", bound=Stream)


class Runtime(Protocol):
    """What a door runs on: its client's engine, executors and scope (the client's, for a
    view). Each is asked for on every call, never kept: a forked child rebuilds them. A
    protocol, so that this layer need not import the client that implements it."""

    @property
    def runner(self) -> CallRunner: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def max_workers(self) -> int: ...

    def check_open(self) -> None: ...

    def scope(self, what: str) -> _cancel.Scope:
        """A scope for a run of many calls (a map, a batch): stopping it stops them only."""
        ...

    def submit(self, model: str | None, fn: Callable[..., T], *args: Any) -> Future[T]:
        """``fn(*args)`` on ``model``'s executor, in a copy of the caller's context."""
        ...


@dataclass(frozen=True)
class CallDefaults:
    """What every call of one client or view starts from; a call's own options win."""

    timeout: Timeout
    retry: RetryConfig
    headers: Mapping[str, str]
    query: Mapping[str, str]
    max_response_bytes: int
    max_event_bytes: int
    fallbacks: Fallbacks


@dataclass(frozen=True)
class Prepared:
    """A call checked and ready to send: nothing was sent to make it."""

    route: str
    body: dict[str, Any]
    options: CallOptions
    chain: list[str]  # the models it tries, in order; never empty


class Door:
    """The way in to the engine for one client or view's resources. Shared by every thread
    (holds no per-call state)."""

    def __init__(
        self,
        runtime: Runtime,
        defaults: CallDefaults,
        on_head: Callable[[ResponseSnapshot], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self._defaults = defaults
        self._on_head = on_head  # given each answer's head (a raw view's door only)

    def capturing(self, on_head: Callable[[ResponseSnapshot], None]) -> Door:
        """This door, handing the head of each answer it gets to ``on_head`` (for one
        ``with_raw_response`` call; an answer from the response cache has none)."""
        return Door(self.runtime, self._defaults, on_head)

    def check_open(self) -> None:
        self.runtime.check_open()

    def prepare(
        self,
        route: str,
        params: Mapping[str, Any],
        check: Callable[[Mapping[str, Any]], None],
        *,
        streaming: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        fallbacks: Sequence[str] | None = None,
        named_fallbacks_only: bool = False,
        **options: Unpack[OptionParams],
    ) -> Prepared:
        """A call's body (``extra_body`` merged in, made plain, checked by ``check``), its
        options (``timeout``, ``max_retries``, ``total_timeout``, ``extra_headers``,
        ``extra_query``) and the models it tries in order (``named_fallbacks_only``: of the
        client's default fallbacks, only an entry naming the model). Nothing is sent if
        this raises.

        Streaming is decided here, once: only a call that hands its stream straight back to
        its caller (``create``) may stream; every other way in names itself as ``streaming``
        (a future, a map, a batch job) and a ``stream=True`` is refused before sending, since
        a live stream holding a slot and a connection until someone reads it is no result.
        """
        self.runtime.check_open()
        if streaming is not None and params.get("stream"):
            raise InvalidArgumentError(
                "stream", f"{streaming} cannot stream: use create(stream=True)"
            )
        if extra_body is not None:
            if not isinstance(extra_body, Mapping):
                raise InvalidArgumentError("extra_body", "expected a dict")
            params = {**params, **extra_body}
        body = plain_params(params)
        check(body)
        chain = chain_of(
            body["model"], fallbacks, self._defaults.fallbacks, named_only=named_fallbacks_only
        )
        return Prepared(route, body, self.options(**options), chain)

    def post_json(
        self,
        call: Prepared,
        required: tuple[str, ...],
        sink: Callable[[RequestRecord], None] | None = None,
    ) -> dict[str, Any]:
        """The raw JSON answer of the first model of the call's chain that answers (through
        the response cache when there is one); ``sink`` also gets each model's record."""
        answer = self._over_chain(
            call,
            lambda body, options, fallback: self.runtime.runner.request_json(
                "POST",
                call.route,
                body,
                options=options,
                required=required,
                sink=sink,
                fallback=fallback,
            ),
        )
        return self._opened(answer)

    def post_stream(self, call: Prepared, kind: type[S]) -> S:
        """The call's stream, opened on the first model of its chain that sends a first event
        (fallbacks happen only before that)."""
        stream = self._over_chain(
            call,
            lambda body, options, fallback: cast(
                S,
                self.runtime.runner.open_stream(
                    call.route, body, options=options, fallback=fallback, kind=kind
                ),
            ),
        )
        if self._on_head is not None:
            self._on_head(stream.response)
        return stream

    def get_json(self, route: str, required: tuple[str, ...]) -> dict[str, Any]:
        """A GET with the default options (no body, no model, so no fallbacks)."""
        return self._opened(
            self.runtime.runner.request_json(
                "GET", route, None, options=self.options(), required=required
            )
        )

    def _opened(self, answer: Answer) -> dict[str, Any]:
        """The body of an answer; its head to a raw view that wants it."""
        if self._on_head is not None:
            head = answer.head
            if head is not None:
                self._on_head(head)
        return answer.data

    def sent_by_default(self) -> Hashable:
        """What every call through this door sends besides its body and the key (default
        headers, names in any case, and query): a cached catalogue is kept for each, since
        they may change the answer."""
        return (
            frozenset((name.lower(), value) for name, value in self._defaults.headers.items()),
            frozenset(self._defaults.query.items()),
        )

    def options(
        self,
        *,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        total_timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> CallOptions:
        """The defaults with a call's own options over them, its budget capped by the
        ``deadline`` block it runs in."""
        defaults = self._defaults
        retry = defaults.retry
        left = time_left()
        if left is not None:
            if left <= 0:
                raise APITimeoutError("the deadline passed before this call could be sent")
            ceiling = total_timeout if total_timeout is not None else retry.total_timeout
            total_timeout = left if ceiling is None else min(ceiling, left)
        if max_retries is not None or total_timeout is not None:
            retry = retry.replace(
                **({"max_retries": max_retries} if max_retries is not None else {}),
                **({"total_timeout": total_timeout} if total_timeout is not None else {}),
            )
        headers = dict(defaults.headers)
        if extra_headers is not None:
            headers.update(check_headers(extra_headers))
        query = dict(defaults.query)
        if extra_query is not None:
            query.update(check_query(extra_query, "extra_query"))
        return CallOptions(
            timeout=defaults.timeout
            if is_not_given(timeout)
            else Timeout.coerce(cast(TimeoutArg, timeout)),
            retry=retry,
            extra_headers=headers,
            query=query,
            max_response_bytes=defaults.max_response_bytes,
            max_event_bytes=defaults.max_event_bytes,
        )

    def _over_chain(
        self,
        call: Prepared,
        send: Callable[[dict[str, Any], CallOptions, tuple[str, str] | None], T],
    ) -> T:
        """``send`` on the first model of the chain, then on the next while the one before
        failed in a way a fallback may heal (see ``fallback.py``); each within what is left of
        the call's budget. ``send`` gets the body, the options and (on a fallback) the model
        left and why."""
        chain = call.chain
        clock = self.runtime.clock.monotonic
        started = clock()
        fallback: tuple[str, str] | None = None
        for index, model in enumerate(chain):
            body, options = call.body, call.options
            if index:
                body = {**call.body, "model": model}
                options = _with_budget_left(call.options, clock() - started)
            try:
                return send(body, options, fallback)
            except APIError as exc:
                reason = fallback_reason(exc) if index + 1 < len(chain) else None
                budget = options.retry.total_timeout
                if reason is None or (budget is not None and budget <= clock() - started):
                    raise
                logger.warning("model %s: %s; moving on to %s", model, reason, chain[index + 1])
                fallback = (model, reason)
        raise AssertionError("unreachable: a chain is never empty")


def _with_budget_left(options: CallOptions, spent: float) -> CallOptions:
    budget = options.retry.total_timeout
    if budget is None:
        return options
    return options.with_retry(options.retry.replace(total_timeout=max(budget - spent, 1e-3)))
