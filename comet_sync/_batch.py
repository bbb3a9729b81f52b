"""The batch engine: many chat calls through one client, one result per job, nothing lost.

``run_batch`` reads jobs lazily, keeps a bounded number in flight on the client's executor,
and yields a :class:`BatchResult` for every job — success or error, a malformed job included —
either as they complete or in input order (within a bounded reordering window). A ``stop``
event ends the intake of new jobs; what is in flight still finishes and is yielded.

The JSONL side (reading input lines, resuming from an output file) is in ``_jsonl.py``; the
command line in ``_cli.py``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._exceptions import APIError, APIStatusError, CometError
from ._metrics import RequestRecord

if TYPE_CHECKING:
    from ._client import CometClient

__all__ = ["BatchJob", "BatchResult", "run_batch"]

# Results are a few kilobytes: a thousand of them waiting for a slow head of line is cheap.
DEFAULT_WINDOW = 1024


@dataclass(frozen=True)
class BatchJob:
    """One chat request of a batch. ``problem`` marks a job that must not be sent (a malformed
    input line): it still gets its result, an error."""

    custom_id: str
    body: Mapping[str, Any] = field(default_factory=dict)
    metadata: Any = None
    line: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class BatchResult:
    custom_id: str
    metadata: Any
    line: int | None
    response: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    latency: float
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"custom_id": self.custom_id, "metadata": self.metadata}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["response"] = self.response
        out["attempts"] = self.attempts
        out["latency"] = round(self.latency, 4)
        if self.line is not None:
            out["line"] = self.line
        return out


def run_batch(
    client: CometClient,
    jobs: Iterable[BatchJob | Mapping[str, Any]],
    *,
    ordered: bool = True,
    window: int | None = None,
    stop: threading.Event | None = None,
) -> Iterator[BatchResult]:
    """Run ``jobs`` through ``client`` and yield one result for each.

    A job is a :class:`BatchJob` or a request body dict (its ``custom_id`` and ``metadata``
    keys are taken out; without an id it gets its position). At most ``window`` jobs (default
    1024, or four times the client's workers if more) are in flight or waiting to be yielded:
    in input order, every result waits behind the oldest unfinished job, which may be in a
    backoff of seconds, so the window must be wide for the workers to stay busy meanwhile.

    >>> for result in run_batch(client, jobs, ordered=False):
    ...     print(result.custom_id, result.ok)
    """
    size = window if window is not None else max(DEFAULT_WINDOW, 4 * client.config.max_workers)
    if size < 1:
        raise ValueError("window must be >= 1")
    client._check_open()
    pending: deque[tuple[BatchJob, Future[BatchResult]]] = deque()
    source = enumerate(jobs, start=1)
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(pending) < size:
            if stop is not None and stop.is_set():
                exhausted = True
                return
            try:
                position, raw = next(source)
            except StopIteration:
                exhausted = True
                return
            job = raw if isinstance(raw, BatchJob) else _job_from_dict(raw, position)
            model = job.body.get("model")
            # Each model's jobs on its own executor: one model's pace holds up no other's.
            executor = client._executor_for_submit(model if isinstance(model, str) else None)
            pending.append((job, executor.submit(_run_job, client, job)))

    stopped = False
    try:
        fill()
        while pending:
            if stop is not None and stop.is_set() and not stopped:
                # Jobs queued on the executor but not started are not "in flight": drop them
                # (they get no result, so a resumed run sends them); running ones finish.
                stopped = True
                for _, future in pending:
                    future.cancel()
                pending = deque((j, f) for j, f in pending if not f.cancelled())
                if not pending:
                    break
            if ordered:
                _, future = pending.popleft()
            else:
                wait([f for _, f in pending], return_when=FIRST_COMPLETED)
                index = next(i for i, (_, f) in enumerate(pending) if f.done())
                _, future = pending[index]
                del pending[index]
            # _run_job turns every failure into a result, so this does not raise.
            result = future.result()
            fill()
            yield result
    finally:
        for _, future in pending:
            future.cancel()


def _job_from_dict(raw: Mapping[str, Any], position: int) -> BatchJob:
    if not isinstance(raw, Mapping):
        return BatchJob(custom_id=str(position), line=position,
                        problem=f"a job must be a JSON object, got {type(raw).__name__}")
    body = {k: v for k, v in raw.items() if k not in ("custom_id", "metadata")}
    custom_id = raw.get("custom_id")
    return BatchJob(custom_id=str(custom_id) if custom_id is not None else str(position),
                    body=body, metadata=raw.get("metadata"), line=position)


def _run_job(client: CometClient, job: BatchJob) -> BatchResult:
    model = job.body.get("model") if isinstance(job.body.get("model"), str) else None
    if job.problem is not None:
        return _failed(job, model, {"type": "InvalidInput", "status": None,
                                    "message": job.problem, "request_id": None}, 0, 0.0)
    records: list[RequestRecord] = []
    try:
        data = client.chat.completions._create_raw(dict(job.body), sink=records.append)
    except CometError as exc:
        rec = records[-1] if records else None
        return _failed(job, model, _error_json(exc), rec.attempts if rec else 0,
                       rec.latency if rec else 0.0)
    rec = records[-1]
    return BatchResult(custom_id=job.custom_id, metadata=job.metadata, line=job.line,
                       response=data, error=None, attempts=rec.attempts, latency=rec.latency,
                       model=model)


def _failed(job: BatchJob, model: str | None, error: dict[str, Any], attempts: int,
            latency: float) -> BatchResult:
    return BatchResult(custom_id=job.custom_id, metadata=job.metadata, line=job.line,
                       response=None, error=error, attempts=attempts, latency=latency,
                       model=model)


def _error_json(exc: CometError) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "status": exc.status_code if isinstance(exc, APIStatusError) else None,
        "message": str(exc),
        "request_id": exc.request_id if isinstance(exc, APIError) else None,
    }
