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

The window, the two orders and stopping are the one fan-out's, ``_fanout.FanOut`` (``map``
drives it too); a run adds the jobs themselves, their scope, and what a finished job means.

Thread safety: a run is consumed by one thread; ``stop``/``abandon`` may come from any thread
or a signal handler.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .. import _cancel
from .._exceptions import APIError, APIStatusError, ClientClosedError, CometError
from .._fanout import FanOut, window_for
from .._resources.chat import Completions
from .._resources.embeddings import Embeddings
from .._resources.responses import Responses

if TYPE_CHECKING:
    from .._client import CometClient
    from .._resources.resource import Resource

__all__ = [
    "BATCH_ROUTES",
    "CHAT_ROUTE",
    "EMBEDDINGS_ROUTE",
    "RESPONSES_ROUTE",
    "BatchJob",
    "BatchResult",
    "BatchRun",
    "Run",
    "run_batch",
    "unsent_result",
]

# The routes a batch line may name: the resources' own (each declares its route once).
CHAT_ROUTE = Completions.route
EMBEDDINGS_ROUTE = Embeddings.route
RESPONSES_ROUTE = Responses.route
BATCH_ROUTES = (CHAT_ROUTE, EMBEDDINGS_ROUTE, RESPONSES_ROUTE)


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


class Run(Protocol):
    """What a batch writer drives: results one by one, and the ways to stop. ``BatchRun``
    (this process's client) and the Celery coordinator's run (``contrib.celery``, workers
    elsewhere) implement it, so the CLI writes either through the same ordered writer."""

    def __iter__(self) -> Iterator[BatchResult]: ...

    def __next__(self) -> BatchResult: ...

    def stop(self) -> None:
        """No new line is sent; what is in flight still finishes and comes, unordered."""

    def abandon(self) -> None:
        """Stop, and give up what is in flight: the run ends at once."""

    def finished(self) -> list[BatchResult]:
        """What has finished and not yet come, without waiting."""

    def close(self) -> None:
        """The consumer is done with the run: abandon what is left."""


class BatchRun(Iterator[BatchResult]):
    """The iterator ``run_batch`` returns; see the module docstring for stopping. The window,
    the orders and stopping are the one fan-out's (``_fanout.FanOut``); a run adds the jobs'
    scope (stopping it stops their requests) and reads each future as a result or none."""

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
        self._scope = client._door.runtime.scope("the batch")
        self._fan: FanOut[BatchJob] = FanOut(
            self._submit,
            (
                raw if isinstance(raw, BatchJob) else _job_from_dict(raw, position)
                for position, raw in enumerate(jobs, start=1)
            ),
            window=window,
            ordered=ordered,
            early=self._report_early if early is not None else None,
            stop_event=stop,
            on_stop=self._scope.stop,
        )

    def _submit(self, job: BatchJob) -> Future[BatchResult | None]:
        if job.problem is not None or job.skipped is not None:
            # Nothing to send: answered here, without a worker.
            future: Future[BatchResult | None] = Future()
            future.set_result(_run_job(self._client, job, self._scope))
            return future
        model = job.body.get("model")
        # Each model's jobs on its own executor: one model's pace holds up no other's.
        return self._client._door.runtime.submit(
            model if isinstance(model, str) else None, _run_job, self._client, job, self._scope
        )

    def _report_early(self, future: Future[Any]) -> None:
        result = _result_of(future)
        if result is not None and self._early is not None:
            self._early(result)

    # -- stopping (any thread) -----------------------------------------------------------------

    def stop(self) -> None:
        """No new job, no new request; finished and in-flight results still come, unordered."""
        self._fan.stop()  # (which stops the scope first, then cancels what has not started)

    def abandon(self) -> None:
        """Stop, and cut the calls on the wire: they end without a result at once."""
        self.stop()
        self._scope.abandon()

    @property
    def stopped(self) -> bool:
        return self._fan.stopped

    def finished(self) -> list[BatchResult]:
        """The results finished and not yet yielded, without waiting for any other (input
        order is given up from here on)."""
        out: list[BatchResult] = []
        for future in self._fan.finished():
            result = _result_of(future)
            if result is not None:
                out.append(result)
        return out

    def close(self) -> None:
        """Abandon what is left (the consumer is done with the run)."""
        if not self._fan.done:
            self.abandon()

    # The fan-out's submitted futures and completion queue, as a run had them before it drove
    # the shared fan-out: tests watch them to see that a long run keeps no slot it yielded.
    @property
    def _futures(self) -> set[Future[Any]]:
        return self._fan._futures

    @property
    def _completed(self) -> queue.SimpleQueue[Any]:
        return self._fan._completed

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> BatchRun:
        return self

    def __next__(self) -> BatchResult:
        while True:
            result = _result_of(next(self._fan))
            if result is not None:
                return result


def _result_of(future: Future[Any]) -> BatchResult | None:
    """A finished job's result; None for one cancelled by a stop before it started, or
    stopped on its way (a resumed run sends it). _run_job turns every failure into a result
    or None, so the future holds no exception."""
    if future.cancelled():
        return None
    result: BatchResult | None = future.result()
    return result


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
    size = window if window is not None else window_for(client.config.max_workers)
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


def unsent_result(job: BatchJob) -> BatchResult | None:
    """The result of a job that sends nothing (a blank or malformed line), made here; None
    for a job to send. A run elsewhere (Celery workers) answers these lines itself too."""
    model = job.body.get("model") if isinstance(job.body.get("model"), str) else None
    if job.skipped is not None:
        return _result(job, None, 0, 0.0, None, None, skipped=job.skipped)
    if job.problem is not None:
        return _failed(
            job,
            model,
            {"type": "InvalidInput", "status": None, "message": job.problem, "request_id": None},
            0,
            0.0,
        )
    return None


def _run_job(client: CometClient, job: BatchJob, scope: _cancel.Scope) -> BatchResult | None:
    """The job's result; None when the run was stopped before the job finished (it has no
    result: a resumed run sends it)."""
    model = job.body.get("model") if isinstance(job.body.get("model"), str) else None
    unsent = unsent_result(job)
    if unsent is not None:
        return unsent
    resource = _resource_for(client, job.route)
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
    return _result(job, model, rec.attempts, rec.latency, rec.request_id, rec.status, answer)


def _resource_for(client: CometClient, route: str) -> Resource:
    """The client's resource that serves ``route`` (chat for any other: a job's default)."""
    for resource in (client.embeddings, client.responses):
        if resource.route == route:
            return resource
    return client.chat.completions


def _failed(
    job: BatchJob, model: str | None, error: dict[str, Any], attempts: int, latency: float
) -> BatchResult:
    return _result(
        job, model, attempts, latency, error.get("request_id"), error.get("status"), error=error
    )


def _result(
    job: BatchJob,
    model: str | None,
    attempts: int,
    latency: float,
    request_id: str | None,
    status_code: int | None,
    response: dict[str, Any] | None = None,
    *,
    error: dict[str, Any] | None = None,
    skipped: str | None = None,
) -> BatchResult:
    """A job's result, in one place for its three ends (answered, failed, skipped): what it
    copies from the job is copied alike."""
    return BatchResult(
        custom_id=job.custom_id,
        metadata=job.metadata,
        line=job.line,
        response=response,
        error=error,
        attempts=attempts,
        latency=latency,
        model=model,
        request_id=request_id,
        status_code=status_code,
        skipped=skipped,
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
