"""The opt-in response cache: identical requests answered once.

Thread safety: ``_lock`` guards the TTL cache and the table of requests in flight; it is never
held across the HTTP call. When several threads ask the same uncached request at once, one of
them (the leader) sends it and the others wait on its flight's event (single-flight); a failed
flight caches nothing, and the waiters then try again, one of them leading.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

from cachetools import TTLCache

from .._exceptions import APITimeoutError, InvalidArgumentError

__all__ = ["ResponseCache"]

DEFAULT_MAXSIZE = 1024
# An hour: long enough for a test run or an evaluation, short enough that a changed model
# behind an alias is picked up the same day.
DEFAULT_TTL = 3600.0


class _Flight:
    __slots__ = ("event", "ok", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False
        self.value: Any = None


class ResponseCache:
    """Caches non-streamed answers by the whole request (route, model, messages, every
    parameter); errors are never cached.

    >>> client = CometClient(cache=ResponseCache(maxsize=1000, ttl=600))
    """

    def __init__(
        self,
        maxsize: int = DEFAULT_MAXSIZE,
        ttl: float = DEFAULT_TTL,
        *,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise InvalidArgumentError("maxsize", f"expected an int >= 1, got {maxsize!r}")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
            raise InvalidArgumentError("ttl", f"expected a positive number, got {ttl!r}")
        self._lock = threading.Lock()
        # One clock for the entries' ages and the waiters' budgets.
        self._timer = timer
        self._cache: TTLCache[str, Any] = TTLCache(maxsize, ttl, timer=timer)
        self._flights: dict[str, _Flight] = {}
        self.hits: int = 0
        self.misses: int = 0

    def empty_like(self) -> ResponseCache:
        """An empty cache of the same size, age and clock: for a view with another API key
        or endpoint, whose answers must not be served from this one's (nor its to this)."""
        return ResponseCache(int(self._cache.maxsize), float(self._cache.ttl), timer=self._timer)

    @staticmethod
    def key(route: str, payload: Mapping[str, Any]) -> str:
        """A canonical encoding of the request: key order and spacing do not matter."""
        text = json.dumps(
            [route, payload], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def get_or_call(
        self, key: str, call: Callable[[], Any], *, timeout: float | None = None
    ) -> tuple[Any, bool]:
        """The cached value for ``key``, or ``call()``'s; and whether it was a hit (a waiter
        on another thread's flight counts as a hit: it sent nothing). A waiter waits at most
        ``timeout`` seconds for another thread's flight, then raises APITimeoutError."""
        end = None if timeout is None else self._timer() + timeout
        while True:
            with self._lock:
                try:
                    value = self._cache[key]
                except KeyError:
                    pass
                else:
                    self.hits += 1
                    return value, True
                flight = self._flights.get(key)
                leader = flight is None
                if leader:
                    flight = self._flights[key] = _Flight()
            assert flight is not None
            if not leader:
                left = None if end is None else end - self._timer()
                if left is not None and (left <= 0 or not flight.event.wait(left)):
                    raise APITimeoutError(
                        f"an identical call in flight on another thread did not finish within "
                        f"this call's budget of {timeout:.3g}s"
                    )
                if left is None:
                    flight.event.wait()
                if flight.ok:
                    with self._lock:
                        self.hits += 1
                    return flight.value, True
                continue  # the leader failed: try again, perhaps as the leader
            try:
                value = call()
            except BaseException:
                with self._lock:
                    del self._flights[key]
                flight.event.set()
                raise
            with self._lock:
                self._cache[key] = value
                del self._flights[key]
                self.misses += 1
            flight.value, flight.ok = value, True
            flight.event.set()
            return value, False

    def _reset_locks(self) -> None:
        # After a fork: the parent's lock may have been held by a thread that does not exist
        # here, and its flights will never land.
        self._lock = threading.Lock()
        self._flights = {}

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
