"""Lazy, bounded, order-keeping fan-out of jobs over executors."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Callable, Generic, TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T]):
    __slots__ = ("future", "job", "key")

    def __init__(self, job: T, key: Hashable) -> None:
        self.job = job
        self.key = key
        self.future: Future[Any] | None = None


def ordered_map(
    submit: Callable[[T], Future[R]],
    jobs: Iterable[T],
    *,
    window: int,
    ahead: int,
    return_exceptions: bool,
    key: Callable[[T], Hashable] = lambda job: None,
    on_exit: Callable[[], None] | None = None,
) -> Iterator[R | BaseException]:
    """Yield the result of ``submit(job)`` for each job, in input order.

    At most ``window`` jobs are pulled ahead of the one being yielded (finished results wait
    in order behind a slow one), but at most ``ahead`` of them per ``key(job)`` are submitted
    at once: no more than the executor for that key can run. Submitting happens only on the
    consumer's thread, while it waits or takes a result, so a consumer that stops pulling
    (``break`` while holding the iterator) stops the sending too, after the jobs already
    started. When the iterator ends however it ends (exhausted, an error, ``close()``,
    garbage collection, KeyboardInterrupt), jobs not started are cancelled and ``on_exit`` runs.
    """
    pending: deque[_Slot[T]] = deque()  # pulled, in input order
    queued: dict[Hashable, deque[_Slot[T]]] = {}  # pulled, not yet submitted, per key
    running: dict[Future[Any], Hashable] = {}  # submitted, not yet seen done
    per_key: dict[Hashable, int] = {}
    source = iter(jobs)
    exhausted = False

    def pull() -> None:
        nonlocal exhausted
        while not exhausted and len(pending) < window:
            try:
                job = next(source)
            except StopIteration:
                exhausted = True
                return
            slot = _Slot(job, key(job))
            pending.append(slot)
            queued.setdefault(slot.key, deque()).append(slot)

    def launch() -> None:
        for k, slots in queued.items():
            while slots and per_key.get(k, 0) < ahead:
                slot = slots.popleft()
                slot.future = submit(slot.job)
                running[slot.future] = k
                per_key[k] = per_key.get(k, 0) + 1

    def reap(done: Iterable[Future[Any]]) -> None:
        for future in done:
            if future in running:  # (a key may be None: no model)
                per_key[running.pop(future)] -= 1

    try:
        pull()
        launch()
        while pending:
            head = pending[0]
            while head.future is None or not head.future.done():
                # Keep the workers busy while the head is slow: refill as others finish.
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                reap(done)
                pull()
                launch()
            pending.popleft()
            future = head.future
            reap([future])
            try:
                result: R | BaseException = future.result()
            except Exception as exc:
                if not return_exceptions:
                    raise
                result = exc
            # Refill before yielding so the pool stays busy while the consumer works.
            pull()
            launch()
            yield result
    finally:
        for future in running:
            future.cancel()
        if on_exit is not None:
            on_exit()
