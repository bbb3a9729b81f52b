"""The retry loop: ``backoff``'s decorator, and what it is told. This is where retries happen.

One decorator per call runner (built once, at construction) wraps "make one attempt".
backoff counts the attempts (``max_tries``), bounds the call's time (``max_time``), stops at
once on what cannot heal (``giveup``), asks :func:`retry_waits` for each wait and sleeps it,
and calls our handlers, which log and note the give-up reason. What varies per call (its
retry settings, its budget, its clock) reaches backoff's zero-argument callables through a
context variable set around the call, :class:`RetryingCall`.

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

How it sleeps: backoff's synchronous loop calls ``time.sleep`` from its own module. That name
is pointed, once, at :data:`BACKOFF_TIME`, whose ``sleep`` is the retrying call's own: the
client's injectable sleep, which by default ``close()`` interrupts, and which tests replace
with a fake clock's, so every wait is checked exactly without waiting. Outside our calls (other
code in the process using backoff) it is ``time.sleep``, as before.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Generator
from contextvars import ContextVar
from typing import Any, Callable, TypeVar, cast

import backoff
import backoff._sync

from .._clock import Clock
from .._config import RetryConfig
from .._exceptions import APIConnectionError, APIError, APIStatusError, LimiterTimeoutError

__all__ = [
    "BACKOFF_TIME",
    "RETRYABLE_STATUSES",
    "RetryLoop",
    "RetryingCall",
    "attempts",
    "is_retryable",
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

    __slots__ = ("clock", "config", "last_error", "reason", "start", "subject", "tries")

    def __init__(
        self, config: RetryConfig, clock: Clock, start: float, *, subject: object = None
    ) -> None:
        self.subject = subject  # what is being retried (for log lines)
        self.config = config
        self.clock = clock
        self.start = start  # on clock.monotonic
        self.tries = 0  # attempts begun
        self.last_error: BaseException | None = None  # the error the next attempt retries
        self.reason: str | None = None  # why a retryable error stopped the loop

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
        if left is not None and wait >= left:
            retrying.reason = (
                f"the next wait of {wait:.3g}s does not fit in the {left:.3g}s left of "
                f"total_timeout={config.total_timeout:g}s"
            )
            return
        exc = yield wait


def _final(exc: Exception) -> bool:
    """backoff's ``giveup``: an error that cannot heal, or one already given up on (a retry
    our own limiter held past the budget re-raises the error it was retrying)."""
    return not is_retryable(exc) or (isinstance(exc, APIError) and exc.giveup_reason is not None)


class _BackoffTime:
    """What backoff's synchronous loop sees as the ``time`` module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        call = _CURRENT.get()
        (call.clock.sleep if call is not None else time.sleep)(seconds)


BACKOFF_TIME = _BackoffTime()
# backoff 2.x sleeps with ``time.sleep`` looked up in its _sync module at each wait; a test
# (tests/test_retries.py) fails if that ever stops being so.
backoff._sync.time = BACKOFF_TIME  # type: ignore[attr-defined,assignment]


def _or_inf(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


class RetryLoop:
    """backoff's decorator around one attempt, built once; shared by every thread.

    ``on_retry(call, exc, wait)`` is called before each wait (the wait backoff reports is the
    wait slept); ``on_giveup(call, exc)`` when a retryable error ends the loop.
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
            max_tries=lambda: _current().config.max_retries + 1,
            max_time=lambda: _or_inf(_current().config.total_timeout),
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
        return attempt()

    def _backoff(self, details: Any) -> None:
        call: RetryingCall = details["args"][0]
        exc: BaseException = details["exception"]
        call.last_error = exc
        self._on_retry(call, exc, details["wait"])

    @staticmethod
    def _giveup(details: Any) -> None:
        call: RetryingCall = details["args"][0]
        exc = details["exception"]
        if not isinstance(exc, APIError) or not is_retryable(exc) or exc.giveup_reason:
            return  # not retryable: it did not "give up"
        if call.reason is not None:
            exc.giveup_reason = call.reason
        elif call.tries >= call.config.max_retries + 1:
            exc.giveup_reason = (
                f"{attempts(call.tries)} made (max_retries={call.config.max_retries})"
            )
        else:  # backoff's own max_time, on its clock
            exc.giveup_reason = f"total_timeout={call.config.total_timeout:g}s spent"
