"""Time budgets that span several calls: ``with comet_sync.deadline(25): ...``.

A web view has a hard budget (a worker timeout, a proxy's 30 s); a retry loop that outlives it
gets the worker killed. Inside the block, every call's ``total_timeout`` is cut to what is left
of the budget, so a retry that cannot fit is not attempted and the error says so. The budget
lives in a context variable: it follows the thread (or task) that entered the block, and calls
submitted to the client's executor from inside it carry it with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .._clock import SYSTEM_CLOCK, Clock
from .._exceptions import InvalidArgumentError

__all__ = ["deadline", "time_left"]


class _Budget:
    """A block's end on its clock, and the tighter budget around it (if any)."""

    __slots__ = ("clock", "end", "outer")

    def __init__(self, clock: Clock, end: float, outer: _Budget | None) -> None:
        self.clock = clock
        self.end = end
        self.outer = outer

    def left(self) -> float:
        own = self.end - self.clock.monotonic()
        return own if self.outer is None else min(own, self.outer.left())


_DEADLINE: ContextVar[_Budget | None] = ContextVar("comet_sync_deadline", default=None)


@contextmanager
def deadline(seconds: float, *, clock: Clock = SYSTEM_CLOCK) -> Iterator[None]:
    """Every comet_sync call made inside the block ends within ``seconds`` of entering it.
    Nested blocks keep the tighter budget. ``clock`` measures it (a test's fake clock; by
    default the system's).

    >>> with comet_sync.deadline(25):
    ...     reply = client.chat.completions.create(...)
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidArgumentError("seconds", f"expected a positive number, got {seconds!r}")
    if not isinstance(clock, Clock):
        raise InvalidArgumentError("clock", "expected a comet_sync.Clock")
    token = _DEADLINE.set(_Budget(clock, clock.monotonic() + seconds, _DEADLINE.get()))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds left of the innermost ``deadline`` block (the tightest of those around it);
    None outside any."""
    budget = _DEADLINE.get()
    return None if budget is None else budget.left()
