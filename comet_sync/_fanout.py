"""The one windowed fan-out of jobs over executors, driven by ``map`` and by batches.

:class:`FanOut` reads jobs lazily, submits them, and hands back each job's future once it is
done, in input order or (``ordered=False``) in completion order. At most ``window`` jobs are
pulled and not yet handed back, so a generator of a million jobs is never held in memory and
finished results wait in order behind a slow one without limit. With ``ahead``, at most that
many jobs of one ``key`` are submitted and not yet done: no more than the executor for that
key can run (the rest wait here, not in the executor's queue, so a stop drops them unsent).
Pulling and submitting happen only on the consumer's thread, while it waits or takes a
future, so a consumer that stops pulling stops the sending too.

Stopping (:meth:`FanOut.stop`, from any thread, or the ``stop_event`` it watches): no job is
pulled or submitted any more; futures not started are cancelled (they are still handed back,
cancelled: what that means is the driver's to say); and order is given up, so every finished
future is handed back at once, in completion order: a slow job at the head of the input
order does not hold back those behind it. :meth:`FanOut.finished` hands over, without
waiting, what has finished and not been handed back.

In input order, ``early`` (if given) is called with each future that finishes while one
ahead of it has not, as it finishes, on the consuming thread; it is still handed back in its
turn.

The fan-out never reads a result: a future is handed back done, and what its value, its
exception or its cancellation mean is left to the driver (``ordered_map`` here, ``BatchRun``
in ``_batch/engine.py``).

Thread safety: a fan-out is consumed by one thread; ``stop`` may come from any thread or a
signal handler. ``_lock`` guards the submitted futures (read by ``stop``).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import Any, Callable, Generic, TypeVar

__all__ = ["DEFAULT_WINDOW", "STOP_POLL_SECONDS", "FanOut", "ordered_map", "window_for"]

T = TypeVar("T")
R = TypeVar("R")

# Results wait in input order behind the oldest unfinished job, which may be in a backoff of
# tens of seconds (five retries of 1, 2, 4, 8, 16 s windows): the window must be wide enough
# for the workers to stay busy meanwhile. A result is a few KB, so 1,024 of them cost little;
# with 64 a single unlucky job stalled every worker for seconds at a time.
DEFAULT_WINDOW = 1024
# How often a fan-out watches a ``stop_event`` it was given (a call to stop() needs no polling).
STOP_POLL_SECONDS = 0.1


def window_for(max_workers: int) -> int:
    """The default window: :data:`DEFAULT_WINDOW`, or four times the workers if more."""
    return max(DEFAULT_WINDOW, 4 * max_workers)


class _Slot(Generic[T]):
    __slots__ = ("future", "job", "key", "seen", "taken")

    def __init__(self, job: T, key: Hashable) -> None:
        self.job = job
        self.key = key
        self.future: Future[Any] | None = None  # None until submitted
        self.taken = False  # handed back (or dropped unsent)
        self.seen = False  # taken off the completion queue (with ``early``, in input order)


class FanOut(Iterator["Future[Any]"], Generic[T]):
    """Jobs pulled from ``jobs``, each submitted with ``submit(job)``; iterating yields each
    job's future once done. See the module docstring."""

    def __init__(
        self,
        submit: Callable[[T], Future[Any]],
        jobs: Iterable[T],
        *,
        window: int,
        ordered: bool = True,
        ahead: int | None = None,
        key: Callable[[T], Hashable] = lambda job: None,
        early: Callable[[Future[Any]], None] | None = None,
        stop_event: threading.Event | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self._submit = submit
        self._source = iter(jobs)
        self._window = window
        self._ordered = ordered
        self._ahead = ahead
        self._key = key
        self._early = early
        self._stop_event = stop_event
        self._on_stop = on_stop
        # Waits are cut at this to look at stop_event; None: nothing to poll.
        self._poll = STOP_POLL_SECONDS if stop_event is not None else None
        self._lock = threading.Lock()
        self._in_order: deque[_Slot[T]] = deque()  # pulled, input order, while ordered
        self._queued: dict[Hashable, deque[_Slot[T]]] = {}  # pulled, held back by ``ahead``
        self._running: dict[Future[Any], Hashable] = {}  # submitted, not seen done (``ahead``)
        self._per_key: dict[Hashable, int] = {}
        self._completed: queue.SimpleQueue[_Slot[T] | None] = queue.SimpleQueue()
        self._open = 0  # slots pulled and not yet taken
        self._futures: set[Future[Any]] = set()  # submitted, not yet taken
        self._exhausted = False
        self._stopped = False
        # Completed by stop(), so a consumer waiting on the head of the line wakes at once.
        self._stop_future: Future[None] = Future()

    # -- stopping (any thread) -----------------------------------------------------------------

    def stop(self) -> None:
        """No new job, no new submission; futures not started are cancelled; from here on
        futures come back as they complete."""
        with self._lock:
            first = not self._stopped
            self._stopped = True
            futures = list(self._futures)
        if not first:
            return
        if self._on_stop is not None:
            self._on_stop()  # before the cancelling: a job starting meanwhile sees the stop
        for future in futures:
            future.cancel()  # only those not started
        self._completed.put(None)  # wake a consumer waiting for completions
        self._stop_future.set_result(None)  # and one waiting on the head of the line

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def exhausted(self) -> bool:
        """Every job has been pulled (none is left to read)."""
        return self._exhausted

    @property
    def done(self) -> bool:
        """Every job pulled and handed back."""
        return self._exhausted and self._open == 0

    def finished(self) -> list[Future[Any]]:
        """The futures finished and not yet handed back, without waiting for any other
        (input order is given up from here on)."""
        self._give_up_order()
        out: list[Future[Any]] = []
        while True:
            try:
                slot = self._completed.get_nowait()
            except queue.Empty:
                return out
            future = self._take(slot) if slot is not None else None
            if future is not None:
                out.append(future)

    # -- iteration (the consuming thread) -------------------------------------------------------

    def __iter__(self) -> FanOut[T]:
        return self

    def __next__(self) -> Future[Any]:
        while True:
            self._watch_stop_event()
            self.fill()
            if self._open == 0:
                raise StopIteration
            if self._ordered and not self._stopped and self._in_order:
                future = self._next_in_order()
            else:
                future = self._next_completed()
            if future is not None:
                return future

    def fill(self) -> None:
        """Pull jobs up to the window and submit what ``ahead`` lets through. A driver may
        call it between taking a future and using it, so the workers stay busy meanwhile."""
        if self._stopped:
            self._drop_queued()
            return
        while not self._exhausted and self._open < self._window:
            try:
                job = next(self._source)
            except StopIteration:
                self._exhausted = True
                break
            slot = _Slot(job, self._key(job) if self._ahead is not None else None)
            self._open += 1
            if self._ordered:
                self._in_order.append(slot)
            if self._ahead is None:
                self._launch(slot)
            else:
                self._queued.setdefault(slot.key, deque()).append(slot)
        if self._ahead is not None:
            self._launch_queued(self._ahead)

    def _launch(self, slot: _Slot[T]) -> None:
        future = self._submit(slot.job)
        slot.future = future
        with self._lock:
            self._futures.add(future)
        if self._ahead is not None:
            self._running[future] = slot.key
            self._per_key[slot.key] = self._per_key.get(slot.key, 0) + 1
        if not self._ordered or self._early is not None:
            future.add_done_callback(partial(_completed, self._completed, slot))

    def _launch_queued(self, ahead: int) -> None:
        for k, slots in self._queued.items():
            while slots and self._per_key.get(k, 0) < ahead:
                self._launch(slots[0])
                slots.popleft()  # (only once submitted: a submit that raises keeps the job)

    def _reap(self, done: Iterable[Future[Any]]) -> None:
        """Count the futures seen done off their key's submitted ones (each seen once: by a
        wait, the early queue, or when taken)."""
        for future in done:
            if future in self._running:
                self._per_key[self._running.pop(future)] -= 1

    def _drop_queued(self) -> None:
        """After a stop: the jobs ``ahead`` held back are dropped unsent."""
        for slots in self._queued.values():
            for slot in slots:
                slot.taken = True
                self._open -= 1
        self._queued.clear()

    def _next_in_order(self) -> Future[Any] | None:
        while self._in_order and self._in_order[0].taken:
            self._in_order.popleft()
        head = self._in_order[0]
        head_done = head.future is not None and head.future.done()
        if self._early is not None:
            self._report_early(head, wait_for_one=not head_done)
            if head.future is None or not head.future.done():
                return None
        elif not head_done:
            watched: list[Future[Any]] = [self._stop_future]
            if head.future is not None:
                watched.append(head.future)
            if any(self._queued.values()):
                # Keep the workers busy while the head is slow: wake as others finish, to
                # submit what waits for them.
                watched.extend(self._running)
            done, _ = wait(watched, return_when=FIRST_COMPLETED, timeout=self._poll)
            self._reap(done)
            return None
        self._in_order.popleft()
        return self._take(head)

    def _report_early(self, head: _Slot[T], *, wait_for_one: bool) -> None:
        """Take every completion off the queue (first waiting for one, if told), handing each
        to ``early`` unless it is the head's. Drained each time, not only while the head is
        slow: the queue also gets the slots taken in their turn, and must not keep them."""
        while True:
            try:
                if wait_for_one:
                    slot = self._completed.get(timeout=self._poll)
                else:
                    slot = self._completed.get_nowait()
            except queue.Empty:
                return
            wait_for_one = False
            if slot is None:
                return  # stopped: the caller looks at the state again
            if slot.taken:
                continue
            slot.seen = True
            if self._ahead is not None and slot.future is not None:
                self._reap([slot.future])
            if slot is head:
                continue
            if self._early is not None and slot.future is not None:
                self._early(slot.future)

    def _next_completed(self) -> Future[Any] | None:
        self._give_up_order()
        try:
            slot = self._completed.get(timeout=self._poll)
        except queue.Empty:
            return None
        return self._take(slot) if slot is not None else None

    def _give_up_order(self) -> None:
        """From now on futures come as they complete (after a stop, or for finished())."""
        self._ordered = False
        while self._in_order:
            slot = self._in_order.popleft()
            if slot.taken or slot.future is None:
                continue  # (one not submitted stays queued: the completion order takes it)
            if self._early is None:
                slot.future.add_done_callback(partial(_completed, self._completed, slot))
            elif slot.seen:
                self._completed.put(slot)  # already off the queue once, not yet handed back

    def _take(self, slot: _Slot[T]) -> Future[Any] | None:
        if slot.taken or slot.future is None:
            return None
        slot.taken = True
        self._open -= 1
        with self._lock:
            self._futures.discard(slot.future)
        if self._ahead is not None:
            self._reap([slot.future])
        return slot.future

    def _watch_stop_event(self) -> None:
        if self._stop_event is not None and self._stop_event.is_set() and not self._stopped:
            self.stop()


def _completed(done: queue.SimpleQueue[_Slot[Any] | None], slot: _Slot[Any], _: Any) -> None:
    done.put(slot)


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
    """Yield the result of ``submit(job)`` for each job, in input order (``map``'s driver).

    A :class:`FanOut` in input order, ``ahead`` jobs per ``key(job)`` at most submitted at
    once. With ``return_exceptions`` a failed job yields its exception in its place;
    otherwise it is raised. When the iterator ends however it ends (exhausted, an error,
    ``close()``, garbage collection, KeyboardInterrupt), the fan-out is stopped (jobs not
    started are cancelled, none is submitted) and ``on_exit`` runs.
    """
    fan = FanOut(submit, jobs, window=window, ahead=ahead, key=key)
    try:
        for future in fan:
            try:
                result: R | BaseException = future.result()
            except Exception as exc:
                if not return_exceptions:
                    raise
                result = exc
            # Refill before yielding so the pool stays busy while the consumer works.
            fan.fill()
            yield result
    finally:
        fan.stop()
        if on_exit is not None:
            on_exit()
