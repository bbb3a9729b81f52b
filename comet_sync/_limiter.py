"""The concurrency limit: how many requests of one client may be in flight at once.

Every HTTP attempt holds a :class:`Slot` from the moment before its request leaves until its
response has been read (for a stream, until the stream is closed). Web-server threads calling
``create`` directly and the client's executor draw from the same limiter, so the bound holds
for the whole process's use of the client.

Thread safety: ``_cond`` guards ``_in_use`` and ``_limit``; it is held only to count, never
across I/O or a sleep. A slot may be released from any thread (a stream closed by the garbage
collector, say), and releasing it twice is harmless.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Callable

__all__ = ["ConcurrencyLimiter", "Slot"]


class ConcurrencyLimiter:
    """A counting semaphore whose limit can be read (and, later, moved) while in use."""

    def __init__(self, limit: int, *, clock: Callable[[], float]) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._cond = threading.Condition(threading.Lock())
        self._limit = limit
        self._in_use = 0
        self._clock = clock

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return self._in_use

    def acquire(self, timeout: float | None = None) -> Slot | None:
        """Wait for a free slot; None if ``timeout`` seconds pass first."""
        with self._cond:
            if self._in_use >= self._limit:
                deadline = None if timeout is None else self._clock() + timeout
                while self._in_use >= self._limit:
                    remaining = None if deadline is None else deadline - self._clock()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._cond.wait(remaining)
            self._in_use += 1
        return Slot(self)

    def _release(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify()


class Slot:
    """One in-flight request's place under the limit. Release it once; later calls are no-ops."""

    __slots__ = ("_limiter", "_lock")

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self._limiter: ConcurrencyLimiter | None = limiter
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._limiter is not None

    def release(self) -> None:
        # The lock makes release idempotent when a stream's close() and its finalizer race.
        with self._lock:
            limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
