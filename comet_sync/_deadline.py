"""Time budgets that span several calls: ``with comet_sync.deadline(25): ...``.

A web view has a hard budget (a worker timeout, a proxy's 30 s); a retry loop that outlives it
gets the worker killed. Inside the block, every call's ``total_timeout`` is cut to what is left
of the budget, so a retry that cannot fit is not attempted and the error says so. The budget
lives in a context variable: it follows the thread (or task) that entered the block, and calls
submitted to the client's executor from inside it carry it with them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._exceptions import InvalidArgumentError

__all__ = ["deadline", "time_left"]

_DEADLINE: ContextVar[float | None] = ContextVar("comet_sync_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every comet_sync call made inside the block ends within ``seconds`` of entering it.
    Nested blocks keep the tighter budget.

    >>> with comet_sync.deadline(25):
    ...     reply = client.chat.completions.create(...)
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidArgumentError("seconds", f"expected a positive number, got {seconds!r}")
    end = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(end if outer is None else min(end, outer))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds left of the innermost ``deadline`` block; None outside any."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()
