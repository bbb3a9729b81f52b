"""The retry loop: ``backoff``'s decorator, and what it is told. This is where retries happen.

One decorator per call runner (built once, at construction) wraps "make one attempt".
backoff runs the loop: it makes the attempts, stops at once on what cannot heal (``giveup``),
asks :func:`retry_waits` for each wait, and calls our handlers, which sleep the wait, log and
note the give-up reason. What varies per call (its retry settings, its budget, its clock)
reaches the generator through a context variable set around the call, :class:`RetryingCall`.

What is retried (CometAPI's documented error codes, summed up in the README): 429, 500, 502,
503, 504, 524, connection errors and timeouts. Never other 4xx, and never CometAPI's permanent
look-alikes: a 500 whose code is ``invalid_request`` (a malformed request), a 503 whose code
is ``model_not_found``, and a 429 that says the quota or balance is spent, none of which heal
by waiting.

How long (:func:`retry_waits`): backoff's exponential generator (``backoff.expo``, factor
``backoff_base``, ``max_value=max_wait``) gives the window; full jitter draws the wait in it,
``U(0, window)``, so a herd of clients that failed together spreads out. A ``Retry-After`` /
``retry-after-ms`` from the server is a floor under that wait (plus up to a tenth of it in
jitter, also when the floor is ``max_wait``: the one wait that may pass it, by that tenth),
which is why the jitter is drawn here and not by backoff's ``jitter`` hook: backoff
would apply it after the floor and undercut it. A server asking for more than ``max_wait``,
or a wait that would run past the call's budget, ends the loop at once (the generator
returns, backoff gives up) instead of sleeping to send an attempt with no time left.

One clock and one count: the call's. :func:`retry_waits` also ends the loop when the attempts
reach ``max_retries + 1`` (the call counts them as it makes them) and when the next wait does
not fit in what ``total_timeout`` leaves on the call's clock; backoff's own ``max_tries`` and
``max_time`` (the latter on ``datetime.now()``, another clock) are not used.

How it sleeps: on the call's clock, never on backoff's. backoff's synchronous loop sleeps with
its module's ``time.sleep``, which a library must not replace (every other ``@backoff`` in the
process would sleep through it). So the generator hands backoff a wait of zero and keeps the
real one on the call; the ``on_backoff`` handler, which backoff calls just before its sleep,
sleeps it with the client's injectable sleep (which ``close()`` interrupts, and which tests
replace with a fake clock's, so every wait is checked exactly without waiting).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from contextvars import ContextVar
from typing import Any, Callable, TypeVar, cast

import backoff

from .._clock import Clock
from .._config import RetryConfig
from .._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    LimiterTimeoutError,
    LimiterUnavailableError,
    TLSError,
)
from .._observe import CallWatch

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryLoop",
    "RetryingCall",
    "attempts",
    "is_retryable",
    "may_heal_later",
    "retry_waits",
]

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 524})
# A server-asked wait is stretched by up to this share of itself, at random.
FLOOR_JITTER = 0.1

_QUOTA_CODES = frozenset(
    {"insufficient_quota", "quota_exceeded", "insufficient_user_quota", "billing_hard_limit"}
)
_QUOTA_WORDS = re.compile(r"quota|balance|insufficient|billing|credit", re.IGNORECASE)


def is_retryable(exc: BaseException) -> bool:
    """Whether waiting and sending the same request again can succeed."""
    if isinstance(exc, LimiterTimeoutError):
        return False  # our own limiter held it until its budget ran out: nothing can heal
    if isinstance(exc, TLSError):
        return False  # the same certificate, the same port: the same failure
    if isinstance(exc, APIConnectionError):
        return True
    if not isinstance(exc, APIStatusError):
        return False
    status = exc.status_code
    if status not in RETRYABLE_STATUSES:
        return False
    if status == 500 and exc.code == "invalid_request":
        return False
    if status == 503 and exc.code == "model_not_found":
        return False
    return not (status == 429 and is_quota_exhausted(exc))


def may_heal_later(exc: BaseException) -> bool:
    """Whether the same request, sent again on a later run (a batch resumed with
    ``--retry-errors``), may succeed: what :func:`is_retryable` says, and what it refuses only
    for the moment of the call. Our own limiter's refusal (its budget spent, its store not
    answering: nothing was sent) binds one run, not the next; and a spent quota or balance
    is topped up between runs, not by waiting within one."""
    if isinstance(exc, (LimiterTimeoutError, LimiterUnavailableError)):
        return True
    if isinstance(exc, APIStatusError) and exc.status_code == 429 and is_quota_exhausted(exc):
        return True
    return is_retryable(exc)


def is_quota_exhausted(exc: APIStatusError) -> bool:
    if exc.code in _QUOTA_CODES:
        return True
    return bool(_QUOTA_WORDS.search(exc.message or ""))


def attempts(count: int) -> str:
    """ "1 attempt", "3 attempts"."""
    return f"{count} attempt" if count == 1 else f"{count} attempts"


class RetryingCall:
    """One call's retry settings and what its loop has seen, for backoff's callables and our
    handlers. Touched only by the thread running the call."""

    __slots__ = (
        "clock",
        "config",
        "last_error",
        "reason",
        "start",
        "started",
        "subject",
        "tries",
        "wait",
        "watch",
    )

    def __init__(
        self,
        config: RetryConfig,
        clock: Clock,
        start: float,
        *,
        subject: object = None,
        watch: CallWatch | None = None,
    ) -> None:
        self.subject = subject  # what is being retried (for log lines)
        self.watch = watch  # an observer's, told of each retry (None: nobody watches)
        self.config = config
        self.clock = clock
        self.start = start  # on clock.monotonic
        self.tries = 0  # attempts begun
        self.last_error: BaseException | None = None  # the error the next attempt retries
        self.reason: str | None = None  # why a retryable error stopped the loop
        self.wait = 0.0  # the wait before the next attempt, slept by the on_backoff handler
        self.started = start  # when the latest attempt began

    def remaining(self) -> float | None:
        """Seconds left of the call's ``total_timeout``; None for no budget."""
        total = self.config.total_timeout
        if total is None:
            return None
        return max(total - (self.clock.monotonic() - self.start), 0.0)


_CURRENT: ContextVar[RetryingCall | None] = ContextVar("comet_sync_retrying_call", default=None)


def _current() -> RetryingCall:
    call = _CURRENT.get()
    if call is None:  # only RetryLoop.run calls the decorated function
        raise RuntimeError("the retry loop ran outside RetryLoop.run")
    return call


def retry_waits(call: RetryingCall) -> Generator[float | None, Any, None]:
    """backoff's wait generator: receives each retryable error (backoff sends it) and yields
    the wait before the next attempt, or returns to end the loop (``call.reason`` says why).
    """
    retrying = call
    config = retrying.config
    random = retrying.clock.random
    windows = backoff.expo(factor=config.backoff_base, max_value=config.max_wait)
    next(windows)  # (expo's own priming step)
    exc = yield None  # (backoff primes us the same way)
    while True:
        if retrying.tries >= config.max_retries + 1:
            retrying.reason = f"{attempts(retrying.tries)} made (max_retries={config.max_retries})"
            return
        wait = random() * next(windows)  # full jitter
        floor = exc.retry_after if isinstance(exc, APIStatusError) else None
        if floor is not None:
            if floor > config.max_wait:
                retrying.reason = (
                    f"server asked to wait {floor:.3g}s, more than max_wait={config.max_wait:g}s"
                )
                return
            # At least what the server asked, plus a little jitter: servers round waits up to
            # whole seconds, and every request refused in the same second would otherwise
            # come back in the same instant. The jitter is on top of the wait even at
            # max_wait (it may pass it by a tenth of the floor): capped, a Retry-After of
            # max_wait sent every refused request back at the same instant.
            wait = max(wait, floor) + floor * FLOOR_JITTER * random()
        left = retrying.remaining()
        # After the wait, the next attempt needs about as long as the last one took: sent
        # with milliseconds left it would time out, and the call would end on a timeout of
        # our own making instead of the server's answer (a 502 became a 504).
        took = max(0.0, retrying.clock.monotonic() - retrying.started)
        if left is not None and wait + took >= left:
            retrying.reason = (
                f"the next wait of {wait:.3g}s and an attempt like the last ({took:.3g}s) do "
                f"not fit in the {left:.3g}s left of total_timeout={config.total_timeout:g}s"
            )
            return
        retrying.wait = wait
        exc = yield 0.0  # backoff's own sleep: none (the handler sleeps on the call's clock)


def _final(exc: Exception) -> bool:
    """backoff's ``giveup``: an error that cannot heal, or one already given up on (a retry
    our own limiter held past the budget re-raises the error it was retrying)."""
    return not is_retryable(exc) or (isinstance(exc, APIError) and exc.giveup_reason is not None)


class RetryLoop:
    """backoff's decorator around one attempt, built once; shared by every thread.

    ``on_retry(call, exc, wait)`` is called before each wait, with the wait then slept.
    """

    def __init__(
        self,
        on_retry: Callable[[RetryingCall, BaseException, float], None],
    ) -> None:
        self._on_retry = on_retry
        self._decorated = backoff.on_exception(
            # (backoff's stubs type the generator as receiving None; it sends the exception)
            cast("Callable[..., Generator[float, None, None]]", retry_waits),
            APIError,
            max_tries=None,  # counted by the call, judged in retry_waits
            max_time=None,  # likewise, on the call's clock
            jitter=None,  # drawn in retry_waits, under the Retry-After floor
            giveup=_final,
            on_backoff=self._backoff,
            on_giveup=self._giveup,
            raise_on_giveup=True,
            logger=None,
            call=_current,  # retry_waits' argument: backoff calls it at each call's start
        )(self._attempt)

    def run(self, call: RetryingCall, attempt: Callable[[], T]) -> T:
        """Make ``attempt`` until it succeeds or the loop gives up (raising the last error,
        with ``.giveup_reason`` filled in when a retryable error stopped the loop)."""
        token = _CURRENT.set(call)
        try:
            result: T = self._decorated(call, attempt)
            return result
        finally:
            _CURRENT.reset(token)

    @staticmethod
    def _attempt(call: RetryingCall, attempt: Callable[[], T]) -> T:
        call.tries += 1
        call.started = call.clock.monotonic()
        return attempt()

    def _backoff(self, details: Any) -> None:
        call: RetryingCall = details["args"][0]
        exc: BaseException = details["exception"]
        call.last_error = exc
        if call.watch is not None:
            call.watch.retrying(exc, call.wait)
        self._on_retry(call, exc, call.wait)
        call.clock.sleep(call.wait)  # backoff's own sleep that follows is of zero seconds

    @staticmethod
    def _giveup(details: Any) -> None:
        call: RetryingCall = details["args"][0]
        exc = details["exception"]
        if not isinstance(exc, APIError) or not is_retryable(exc) or exc.giveup_reason:
            return  # not retryable: it did not "give up"
        if call.reason is not None:
            exc.giveup_reason = call.reason
