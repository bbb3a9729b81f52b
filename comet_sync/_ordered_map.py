"""Lazy, bounded, order-keeping fan-out of jobs over an executor."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    submit: Callable[[T], Future[R]],
    jobs: Iterable[T],
    *,
    window: int,
    return_exceptions: bool,
) -> Iterator[R | BaseException]:
    """Yield the result of ``submit(job)`` for each job, in input order, with at most ``window``
    jobs pending.

    Jobs are pulled from ``jobs`` only as results are taken, so an endless generator is fine.
    If the consumer stops early (``break``, ``close()``, garbage collection), jobs not yet
    started are cancelled.
    """
    pending: deque[Future[Any]] = deque()
    source = iter(jobs)
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(pending) < window:
            try:
                job = next(source)
            except StopIteration:
                exhausted = True
                return
            pending.append(submit(job))

    try:
        fill()
        while pending:
            future = pending.popleft()
            try:
                result: R | BaseException = future.result()
            except Exception as exc:
                if not return_exceptions:
                    raise
                result = exc
            # Refill before yielding so the pool stays busy while the consumer works.
            fill()
            yield result
    finally:
        for future in pending:
            future.cancel()
