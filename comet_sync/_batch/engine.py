"""The batch engine: many calls through one client, one result per job, nothing lost.

``run_batch`` reads jobs lazily, keeps a bounded number in flight on the client's executors,
and yields a :class:`BatchResult` for every job — success or error, a malformed job included —
either as they complete or in input order (within a bounded reordering window).

Stopping (:meth:`BatchRun.stop`, or the ``stop`` event): no job is taken and no request leaves
any more — jobs queued or waiting for a slot, a pace or a retry are dropped without a result,
so a resumed run sends them — while calls on the wire finish, and every finished result is
yielded at once, in completion order: a slow call at the head of the input order does not hold
back the results behind it. :meth:`BatchRun.abandon` also cuts the calls on the wire;
:meth:`BatchRun.finished` hands over, without waiting, whatever has finished and not yet been
yielded — what an interrupted writer must save before it exits.

In input order, ``early`` (if given) is called with each result that finishes while one ahead
of it has not, as it finishes, on the consuming thread; the result is still yielded in its
turn. A writer saves it there, so a crash does not lose what waits behind a slow line.

The JSONL side (reading input lines, resuming from an output file) is in ``jsonl.py``; the
command line in ``_cli.py``.

Thread safety: a run is consumed by one thread; ``stop``/``abandon`` may come from any thread
or a signal handler. ``_lock`` guards the list of submitted futures (read by ``stop``).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from .. import _cancel
from .._exceptions import APIError, APIStatusError, ClientClosedError, CometError

if TYPE_CHECKING:
    from .._client import CometClient
    from .._resources.resource import Resource

__all__ = [
    "CHAT_ROUTE",
    "EMBEDDINGS_ROUTE",
    "RESPONSES_ROUTE",
    "BatchJob",
    "BatchResult",
    "BatchRun",
    "run_batch",
]

# Results are a few kilobytes: a thousand of them waiting for a slow head of line is cheap.
DEFAULT_WINDOW = 1024
# How often a run watches a ``stop`` event it was given (a call to stop() needs no polling).
STOP_POLL_SECONDS = 0.1
CHAT_ROUTE = "/chat/completions"
EMBEDDINGS_ROUTE = "/embeddings"
RESPONSES_ROUTE = "/responses"


@dataclass(frozen=True)
class BatchJob:
    """One request of a batch. ``custom_id`` is None when the input gave none: the job is
    then known by its ``line``. ``problem`` marks a job that must not be sent (a malformed
    input line): it still gets its result, an error. ``skipped`` marks a line with nothing to
    send (a blank line): it gets a result that is no error."""

    custom_id: str | None
    body: Mapping[str, Any] = field(default_factory=dict)
    metadata: Any = None
    line: int | None = None
    problem: str | None = None
    route: str = CHAT_ROUTE
    skipped: str | None = None


@dataclass(frozen=True)
class BatchResult:
    custom_id: str | None
    metadata: Any
    line: int | None
    response: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    latency: float
    model: str | None = None
    request_id: str | None = None
    status_code: int | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The result as one line of comet-sync's own output format."""
        out: dict[str, Any] = {"custom_id": self.custom_id, "metadata": self.metadata}
        if self.skipped is not None:
            out["skipped"] = self.skipped
        elif self.error is not None:
            out["error"] = self.error
        else:
            out["response"] = self.response
            out["request_id"] = self.request_id
        out["attempts"] = self.attempts
        out["latency"] = round(self.latency, 4)
        if self.line is not None:
            out["line"] = self.line
        return out


class _Slot:
    __slots__ = ("future", "job", "seen", "taken")

    def __init__(self, job: BatchJob, future: Future[BatchResult | None]) -> None:
        self.job = job
        self.future = future
        self.taken = False
        self.seen = False  # taken off the completion queue (with ``early``, in input order)


class BatchRun(Iterator[BatchResult]):
    """The iterator ``run_batch`` returns; see the module docstring for stopping."""

    def __init__(
        self,
        client: CometClient,
        jobs: Iterable[BatchJob | Mapping[str, Any]],
        *,
        ordered: bool,
        window: int,
        stop: threading.Event | None,
        early: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self._client = client
        self._early = early
        self._source = enumerate(jobs, start=1)
        self._ordered = ordered
        self._window = window
        self._stop_event = stop
        self._scope = client._door.runtime.scope("the batch")
        self._lock = threading.Lock()
        self._in_order: deque[_Slot] = deque()  # input order, while ordered
        self._completed: queue.SimpleQueue[_Slot | None] = queue.SimpleQueue()
        self._open = 0  # slots not yet taken
        self._futures: set[Future[Any]] = set()
        self._exhausted = False
        self._stopped = False
        # Completed by stop(), so a consumer waiting on the head of the line wakes at once.
        self._stop_future: Future[None] = Future()

    # -- stopping (any thread) -----------------------------------------------------------------

    def stop(self) -> None:
        """No new job, no new request; finished and in-flight results still come, unordered."""
        with self._lock:
            first = not self._stopped
            self._stopped = True
            futures = list(self._futures)
        if not first:
            return
        self._scope.stop()
        for future in futures:
            future.cancel()  # only those not started; their slots come back without a result
        self._completed.put(None)  # wake a consumer waiting for completions
        self._stop_future.set_result(None)  # and one waiting on the head of the line

    def abandon(self) -> None:
        """Stop, and cut the calls on the wire: they end without a result at once."""
        self.stop()
        self._scope.abandon()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def finished(self) -> list[BatchResult]:
        """The results finished and not yet yielded, without waiting for any other (input
        order is given up from here on)."""
        self._give_up_order()
        out: list[BatchResult] = []
        while True:
            try:
                slot = self._completed.get_nowait()
            except queue.Empty:
                return out
            result = self._take(slot) if slot is not None else None
            if result is not None:
                out.append(result)

    def close(self) -> None:
        """Abandon what is left (the consumer is done with the run)."""
        if self._open or not self._exhausted:
            self.abandon()

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> BatchRun:
        return self

    def __next__(self) -> BatchResult:
        while True:
            self._watch_stop_event()
            self._fill()
            if self._open == 0:
                raise StopIteration
            if self._ordered and not self._stopped and self._in_order:
                result = self._next_in_order()
            else:
                result = self._next_completed()
            if result is not None:
                return result

    def _next_in_order(self) -> BatchResult | None:
        while self._in_order and self._in_order[0].taken:
            self._in_order.popleft()
        head = self._in_order[0]
        if self._early is not None:
            self._report_early(head, wait_for_one=not head.future.done())
            if not head.future.done():
                return None
        elif not head.future.done():
            watched: list[Future[Any]] = [head.future, self._stop_future]
            wait(
                watched,
                return_when=FIRST_COMPLETED,
                timeout=STOP_POLL_SECONDS if self._stop_event is not None else None,
            )
            return None
        self._in_order.popleft()
        return self._take(head)

    def _report_early(self, head: _Slot, *, wait_for_one: bool) -> None:
        """Take every completion off the queue (first waiting for one, if told), handing each
        to ``early`` unless it is the head's. Drained each time, not only while the head is
        slow: the queue also gets the slots taken in their turn, and must not keep them."""
        while True:
            try:
                if wait_for_one:
                    slot = self._completed.get(
                        timeout=STOP_POLL_SECONDS if self._stop_event is not None else None
                    )
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
            if slot is head:
                continue
            result = None if slot.future.cancelled() else slot.future.result()
            if result is not None and self._early is not None:
                self._early(result)

    def _next_completed(self) -> BatchResult | None:
        self._give_up_order()
        try:
            slot = self._completed.get(
                timeout=STOP_POLL_SECONDS if self._stop_event is not None else None
            )
        except queue.Empty:
            return None
        return self._take(slot) if slot is not None else None

    def _give_up_order(self) -> None:
        """From now on results come as they complete (after a stop, or for finished())."""
        self._ordered = False
        while self._in_order:
            slot = self._in_order.popleft()
            if slot.taken:
                continue
            if self._early is None:
                slot.future.add_done_callback(partial(_completed, self._completed, slot))
            elif slot.seen:
                self._completed.put(slot)  # already off the queue once, not yet yielded

    def _take(self, slot: _Slot) -> BatchResult | None:
        if slot.taken:
            return None
        slot.taken = True
        self._open -= 1
        with self._lock:
            self._futures.discard(slot.future)
        if slot.future.cancelled():
            return None
        return slot.future.result()  # _run_job turns every failure into a result or None

    def _watch_stop_event(self) -> None:
        if self._stop_event is not None and self._stop_event.is_set() and not self._stopped:
            self.stop()

    def _fill(self) -> None:
        while not self._exhausted and not self._stopped and self._open < self._window:
            try:
                position, raw = next(self._source)
            except StopIteration:
                self._exhausted = True
                return
            job = raw if isinstance(raw, BatchJob) else _job_from_dict(raw, position)
            if job.problem is not None or job.skipped is not None:
                # Nothing to send: answered here, without a worker.
                future: Future[BatchResult | None] = Future()
                future.set_result(_run_job(self._client, job, self._scope))
            else:
                model = job.body.get("model")
                # Each model's jobs on its own executor: one model's pace holds up no other's.
                future = self._client._door.runtime.submit(
                    model if isinstance(model, str) else None,
                    _run_job,
                    self._client,
                    job,
                    self._scope,
                )
            slot = _Slot(job, future)
            self._open += 1
            with self._lock:
                self._futures.add(future)
            if self._ordered:
                self._in_order.append(slot)
            if not self._ordered or self._early is not None:
                future.add_done_callback(partial(_completed, self._completed, slot))


def _completed(done: queue.SimpleQueue[_Slot | None], slot: _Slot, _: Future[Any]) -> None:
    done.put(slot)


def run_batch(
    client: CometClient,
    jobs: Iterable[BatchJob | Mapping[str, Any]],
    *,
    ordered: bool = True,
    window: int | None = None,
    stop: threading.Event | None = None,
    early: Callable[[BatchResult], None] | None = None,
) -> BatchRun:
    """Run ``jobs`` through ``client`` and yield one result for each.

    A job is a :class:`BatchJob` or a request body dict (its ``custom_id`` and ``metadata``
    keys are taken out). At most ``window`` jobs (default 1024, or four times the client's
    workers if more) are in flight or waiting to be yielded: in input order, every result
    waits behind the oldest unfinished job, which may be in a backoff of seconds, so the
    window must be wide for the workers to stay busy meanwhile. Setting ``stop`` (or calling
    the run's ``stop()``) stops it as the module docstring says; ``early`` is described there
    too.

    >>> for result in run_batch(client, jobs, ordered=False):
    ...     print(result.custom_id, result.ok)
    """
    size = window if window is not None else max(DEFAULT_WINDOW, 4 * client.config.max_workers)
    if size < 1:
        raise ValueError("window must be >= 1")
    client._door.check_open()
    return BatchRun(client, jobs, ordered=ordered, window=size, stop=stop, early=early)


def _job_from_dict(raw: Mapping[str, Any], position: int) -> BatchJob:
    if not isinstance(raw, Mapping):
        return BatchJob(
            custom_id=None,
            line=position,
            problem=f"a job must be a JSON object, got {type(raw).__name__}",
        )
    body = {k: v for k, v in raw.items() if k not in ("custom_id", "metadata")}
    custom_id = raw.get("custom_id")
    return BatchJob(
        custom_id=str(custom_id) if custom_id is not None else None,
        body=body,
        metadata=raw.get("metadata"),
        line=position,
    )


def _run_job(client: CometClient, job: BatchJob, scope: _cancel.Scope) -> BatchResult | None:
    """The job's result; None when the run was stopped before the job finished (it has no
    result: a resumed run sends it)."""
    model = job.body.get("model") if isinstance(job.body.get("model"), str) else None
    if job.skipped is not None:
        return BatchResult(
            custom_id=job.custom_id,
            metadata=job.metadata,
            line=job.line,
            response=None,
            error=None,
            attempts=0,
            latency=0.0,
            skipped=job.skipped,
        )
    if job.problem is not None:
        return _failed(
            job,
            model,
            {"type": "InvalidInput", "status": None, "message": job.problem, "request_id": None},
            0,
            0.0,
        )
    if job.route == EMBEDDINGS_ROUTE:
        resource: Resource = client.embeddings
    elif job.route == RESPONSES_ROUTE:
        resource = client.responses
    else:
        resource = client.chat.completions
    try:
        with _cancel.entered(scope):
            scope.raise_if_stopped()
            answer, rec = resource._answer_line(job.body)
    except ClientClosedError as exc:
        answer, rec = exc, None
    if isinstance(answer, CometError):
        if isinstance(answer, ClientClosedError) and scope.stopped.is_set():
            return None  # our own stop: not a result
        return _failed(
            job,
            model,
            _error_json(answer),
            rec.attempts if rec else 0,
            rec.latency if rec else 0.0,
        )
    assert rec is not None  # an answer always comes with its record
    return BatchResult(
        custom_id=job.custom_id,
        metadata=job.metadata,
        line=job.line,
        response=answer,
        error=None,
        attempts=rec.attempts,
        latency=rec.latency,
        model=model,
        request_id=rec.request_id,
        status_code=rec.status,
    )


def _failed(
    job: BatchJob, model: str | None, error: dict[str, Any], attempts: int, latency: float
) -> BatchResult:
    return BatchResult(
        custom_id=job.custom_id,
        metadata=job.metadata,
        line=job.line,
        response=None,
        error=error,
        attempts=attempts,
        latency=latency,
        model=model,
        request_id=error.get("request_id"),
        status_code=error.get("status"),
    )


def _error_json(exc: CometError) -> dict[str, Any]:
    out = {
        "type": type(exc).__name__,
        "status": exc.status_code if isinstance(exc, APIStatusError) else None,
        "message": str(exc),
        "request_id": exc.request_id if isinstance(exc, APIError) else None,
    }
    if isinstance(exc, APIStatusError):
        out["body"] = exc.document  # as the server sent it, as OpenAI's Batch API has it
    return out
