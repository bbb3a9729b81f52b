"""A batch on Celery workers: the coordinator's side (``comet-sync batch --celery module:app``).

Design. The coordinator is the CLI process (or ``run_batch_on``): it reads the input, works out
what is finished, and writes the output exactly as a local batch does (the same line parsing,
ordered writer, journal, ledger, lock and resume rules: ``_cli``), and only the sending is
elsewhere. :class:`CeleryRun` stands where a local ``BatchRun`` stands, behind the same
``Run`` interface, so none of the writing is written twice:

* Lines are pulled through the same fan-out (``_fanout.FanOut``: window, input or completion
  order, ``early`` results for the journal, stopping). Each line's future is resolved from
  Redis; lines to send gather into chunks of ``chunk_size`` sent as ``comet_sync.batch_chunk``
  tasks (``_chunk``), which run them through the worker's ``client()`` with the local engine's
  ``run_batch``. A partial chunk goes out when fewer than a chunk's lines are left in flight,
  or the input has ended, so the workers never wait on the coordinator's window.
* Workers record each line's result on Redis as it finishes (``_store``: once per line) and
  announce it on a list a pump thread here blocks on. The coordinator is the only writer of
  the output. Before sending a line it looks it up on Redis: a resumed coordinator takes what
  the workers finished while it was gone (the run's id is kept beside the output, in
  ``OUTPUT.celery``) instead of sending it again.
* Stopping (Ctrl-C): the session's epoch on Redis is moved on, so no chunk sends another line
  (queued chunks do nothing when they arrive); chunks that had started finish the calls on
  their wire and say so; what finished is written, what did not is sent by the resume. A
  resumed coordinator starts a new epoch, which also silences every chunk its predecessor
  left queued.
* A chunk whose task fails (a worker that cannot build its client, Redis lost while recording)
  stops the run with the worker's error: the rest would fail alike.

Chosen over one task per line: a task per line costs a broker round trip and a result per
line, and a worker killed mid-chunk re-sends only the chunk's unfinished lines anyway, because
results are recorded per line, not per chunk.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from ..._batch.engine import BatchJob, BatchResult, unsent_result
from ..._batch.jsonl import is_retryable_error
from ..._exceptions import InvalidArgumentError
from ..._fanout import DEFAULT_WINDOW, FanOut
from ..._metrics import Metrics, Snapshot
from ..._records import RequestRecord
from ._chunk import CHUNK_TASK
from ._store import DEFAULT_TTL, RunStore, job_digest, job_payload

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "CeleryBackend",
    "CeleryRun",
    "load_app",
    "run_id_path",
]

logger = logging.getLogger("comet_sync")

# Lines per chunk task: a broker message and a task start are paid per chunk, and a chunk is
# what a stop waits for and what a killed worker's redelivery walks through again (skipping
# what was recorded), so it stays small next to a batch.
DEFAULT_CHUNK_SIZE = 100
# Written lines are marked so on Redis (their answers dropped there) this many at a time.
MARK_EVERY = 256
# How long a resumed coordinator waits for its predecessor's chunks to finish their calls.
SETTLE_WAIT = 30.0
# How long the pump waits on Redis per round (so it notices a close), and after an error.
PUMP_WAIT = 0.5
PUMP_RETRY = 1.0


def load_app(spec: str) -> Any:
    """The Celery app named ``module:attribute`` (or ``module``, whose ``app`` or ``celery``
    is taken, as ``celery -A`` does). Raises ``InvalidArgumentError`` naming ``--celery``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise InvalidArgumentError("--celery", f"expected module:app, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error of the user's module: said, not a traceback
        raise InvalidArgumentError(
            "--celery", f"cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from None
    names = [attribute] if attribute else ["app", "celery"]
    for name in names:
        app = getattr(module, name, None)
        if app is not None:
            return check_app(app, spec)
    raise InvalidArgumentError("--celery", f"{module_name} has no {' or '.join(names)}")


def check_app(app: Any, name: str, argument: str = "--celery") -> Any:
    """``app`` if it is a Celery app set up with ``setup(app)``; else InvalidArgumentError
    naming ``argument``."""
    from celery import Celery

    from . import _worker

    if not isinstance(app, Celery):
        raise InvalidArgumentError(argument, f"{name} is not a Celery app")
    if not _worker.is_set_up(app):
        raise InvalidArgumentError(
            argument,
            f"{name} is not set up for comet_sync: call comet_sync.contrib.celery.setup(app) in "
            "the module that defines it (its workers would not have the batch's chunk task)",
        )
    return app


def run_id_path(output: str) -> str:
    return output + ".celery"


class CeleryBackend:
    """Where a batch's lines go with ``--celery``: the app's workers, through its Redis."""

    def __init__(
        self,
        app: Any,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        window: int | None = None,
        queue: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        from . import _worker

        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InvalidArgumentError("chunk_size", f"expected an int >= 1, got {chunk_size!r}")
        self.app = app
        self.chunk_size = chunk_size
        # Room for several chunks per worker slot while results wait in input order.
        self.window = window or max(DEFAULT_WINDOW, 8 * chunk_size)
        self.queue = queue
        self.ttl = ttl
        url, self.namespace = _worker.redis_location(app)  # refuses a broker that is not Redis
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        try:
            self.redis.ping()
        except Exception as exc:
            # (The URL is not quoted: it may hold a password.)
            raise InvalidArgumentError(
                "--celery", f"cannot reach the app's Redis: {type(exc).__name__}: {exc}"
            ) from None
        self.metrics = Metrics()
        self.run_id = ""
        self.run: CeleryRun | None = None

    def prepare(self, output: str, *, resume: bool) -> None:
        """The run's id: kept beside ``output`` (a resume takes it, to find what the workers
        recorded), new for a fresh run. Written before anything is sent."""
        path = run_id_path(output)
        kept = _read_run_id(path) if resume else None
        self.run_id = kept or uuid.uuid4().hex
        if kept is None:
            _write_run_id(path, self.run_id)

    def start(
        self,
        jobs: Iterable[BatchJob],
        *,
        ordered: bool,
        early: Callable[[BatchResult], None] | None,
        retry_errors: bool,
    ) -> CeleryRun:
        store = RunStore(self.redis, self.namespace, self.run_id, self.ttl)
        try:
            self.run = CeleryRun(
                self, store, jobs, ordered=ordered, early=early, retry=retry_errors
            )
        except Exception as exc:  # (Redis lost since the check: nothing was sent)
            raise InvalidArgumentError(
                "--celery", f"cannot reach the app's Redis: {type(exc).__name__}: {exc}"
            ) from None
        return self.run

    def snapshot(self) -> Snapshot:
        return self.metrics.snapshot()

    @property
    def failure(self) -> str | None:
        return self.run.failure if self.run is not None else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.close()


class _Waiting:
    __slots__ = ("chunk", "digest", "future", "route")

    def __init__(self, future: Future[Any], chunk: str, digest: str, route: str) -> None:
        self.future = future
        self.chunk = chunk
        self.digest = digest
        self.route = route


class CeleryRun(Iterator[BatchResult]):
    """A batch whose lines run on Celery workers, behind the local run's interface
    (``_batch.engine.Run``): see the module docstring. Consumed by one thread; ``stop`` and
    ``abandon`` may come from any thread or a signal handler."""

    def __init__(
        self,
        backend: CeleryBackend,
        store: RunStore,
        jobs: Iterable[BatchJob],
        *,
        ordered: bool,
        early: Callable[[BatchResult], None] | None,
        retry: bool,
    ) -> None:
        self._backend = backend
        self._store = store
        self._retry = retry
        self._early = early
        self._chunk_size = backend.chunk_size
        self.epoch = store.begin()
        self._settled = False
        self.failure: str | None = None
        self._pending: list[tuple[BatchJob, Future[Any]]] = []  # consumer thread only
        self._chunks_sent = 0
        # Lines handed to the consumer: written once it asks for the next (consumer thread).
        self._handed: int | None = None
        self._written: list[int] = []
        # Guards the two below; held for no I/O, and never taken by stop() (a signal handler
        # may run it on the consuming thread while that thread holds the lock).
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiting] = {}  # sent lines without a result
        self._unstarted: dict[str, set[int]] = {}  # chunks not yet announced as started
        self._stop_asked = threading.Event()
        self._closed = threading.Event()
        self._fan: FanOut[BatchJob] = FanOut(
            self._submit,
            jobs,
            window=backend.window,
            ordered=ordered,
            early=self._report_early if early is not None else None,
            on_stop=self._on_stop,
        )
        self._pump = threading.Thread(target=self._pump_events, daemon=True, name="comet-pump")
        self._pump.start()

    # -- the consuming thread --------------------------------------------------------------------

    def __iter__(self) -> CeleryRun:
        return self

    def __next__(self) -> BatchResult:
        if not self._settled:
            # Here, not when the run is made: the writer's Ctrl-C handler is in place by now.
            self._settled = True
            _settle(self._store, self._stop_asked)
        self._note_written()
        while True:
            if not self._fan.stopped:
                self._fan.fill()
                self._maybe_send()
            result = _result_of(next(self._fan))
            if result is not None:
                self._handed = result.line
                return result

    def _note_written(self, flush: bool = False) -> None:
        """The consumer asks for a result only once it has written the last one: mark that
        one written on Redis (in batches), where its answer is no longer needed."""
        if self._handed is not None:
            self._written.append(self._handed)
            self._handed = None
        if self._written and (flush or len(self._written) >= MARK_EVERY):
            written, self._written = self._written, []
            try:
                self._store.mark_written(written)
            except Exception as exc:  # kept in full instead: a resume reads them as results
                logger.warning("comet_sync batch: Redis: %s: %s", type(exc).__name__, exc)

    def _submit(self, job: BatchJob) -> Future[Any]:
        future: Future[Any] = Future()
        unsent = unsent_result(job)
        if unsent is not None:
            future.set_result(unsent)  # a blank or malformed line: answered here
        else:
            self._pending.append((job, future))
        return future

    def _maybe_send(self) -> None:
        if not self._pending:
            return
        with self._lock:
            in_flight = len(self._waiting)
        if (
            len(self._pending) >= self._chunk_size
            or in_flight < self._chunk_size
            or self._fan.exhausted
        ):
            pending, self._pending = self._pending, []
            self._send(pending)

    def _send(self, pending: list[tuple[BatchJob, Future[Any]]]) -> None:
        """Take what Redis already holds; send the rest in chunks."""
        items = []
        for job, future in pending:
            payload = job_payload(job)
            items.append((job, future, payload, job_digest(payload)))
        try:
            found = self._store.fetch(int(job.line or 0) for job, _, _, _ in items)
            stale: list[int] = []
            to_send = []
            for job, future, payload, digest in items:
                line = int(job.line or 0)
                stored = found.get(line)
                if (
                    stored is not None
                    and stored.digest == digest
                    and not (self._retry and is_retryable_error(stored.result.to_json()))
                ):
                    if future.set_running_or_notify_cancel():
                        self._resolve(future, stored.result, job.route)
                    continue
                if line in found:
                    # Another job's result (a line fixed since), an error this resume retries,
                    # or a line marked written that the resume took out of the output to send
                    # again (--retry-errors, a fixed line): dropped, and the line sent.
                    stale.append(line)
                to_send.append((job, future, payload, digest))
            self._store.forget(stale)
        except Exception as exc:
            self._fail(f"cannot reach the app's Redis: {type(exc).__name__}: {exc}")
            return
        for start in range(0, len(to_send), self._chunk_size):
            self._send_chunk(to_send[start : start + self._chunk_size])

    def _send_chunk(self, items: list[tuple[BatchJob, Future[Any], dict[str, Any], str]]) -> None:
        chunk = f"{self.epoch}.{self._chunks_sent}"
        self._chunks_sent += 1
        lines: list[list[Any]] = []
        with self._lock:
            for job, future, payload, digest in items:
                # Running from now on: a stop no longer cancels it, its result is awaited.
                if not future.set_running_or_notify_cancel():
                    continue
                line = int(job.line or 0)
                self._waiting[line] = _Waiting(future, chunk, digest, job.route)
                lines.append([line, digest, payload])
            if not lines:
                return
            self._unstarted[chunk] = {line for line, _, _ in lines}
        try:
            self._backend.app.send_task(
                CHUNK_TASK,
                args=[self._store_run_id, self.epoch, chunk, lines],
                kwargs={"ttl": self._backend.ttl},
                queue=self._backend.queue,
            )
        except Exception as exc:
            self._fail(f"cannot send a chunk to the broker: {type(exc).__name__}: {exc}")
            self._drop_lines(line for line, _, _ in lines)

    @property
    def _store_run_id(self) -> str:
        return self._backend.run_id

    def _report_early(self, future: Future[Any]) -> None:
        result = _result_of(future)
        if result is not None and self._early is not None:
            self._early(result)

    # -- stopping (any thread) -------------------------------------------------------------------

    def stop(self) -> None:
        self._fan.stop()

    def _on_stop(self) -> None:
        # The fan-out cancels the futures of lines not yet sent; the workers are told by the
        # pump (no Redis call from a signal handler).
        self._pending = []
        self._stop_asked.set()

    def abandon(self) -> None:
        self.stop()
        with self._lock:
            lines = list(self._waiting)
        self._drop_lines(lines)

    @property
    def stopped(self) -> bool:
        return self._fan.stopped

    def finished(self) -> list[BatchResult]:
        out: list[BatchResult] = []
        for future in self._fan.finished():
            result = _result_of(future)
            if result is not None:
                out.append(result)
                if result.line is not None:
                    # Written by the consumer before it closes the run (which marks them).
                    self._written.append(result.line)
        return out

    def close(self) -> None:
        """Called once the consumer has written what it will (``finished()`` included)."""
        complete = self._fan.done and not self._stop_asked.is_set() and self.failure is None
        if not self._fan.done:
            self.abandon()
        self._closed.set()
        if self._pump is not threading.current_thread():
            self._pump.join(timeout=2 * PUMP_WAIT + 1)
        try:
            if complete:
                self._store.delete()  # every line is in the output: nothing to keep
            else:
                self._note_written(flush=True)
        except Exception as exc:  # (the keys lapse with their TTL)
            logger.warning("comet_sync batch: Redis: %s: %s", type(exc).__name__, exc)

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
        self.stop()

    # -- results (the pump thread) ---------------------------------------------------------------

    def _resolve(self, future: Future[Any], result: BatchResult | None, route: str) -> None:
        if result is not None and result.attempts > 0:
            self._backend.metrics.record(_record_of(result, route))
        with contextlib.suppress(Exception):  # (abandoned meanwhile: already resolved)
            future.set_result(result)

    def _drop_lines(self, lines: Iterable[int]) -> None:
        """These lines end without a result (a resume sends them)."""
        dropped = []
        with self._lock:
            for line in lines:
                entry = self._waiting.pop(line, None)
                if entry is not None:
                    dropped.append(entry)
        for entry in dropped:
            self._resolve(entry.future, None, entry.route)

    def _pump_events(self) -> None:
        stop_told = False
        while not self._closed.is_set():
            try:
                if self._stop_asked.is_set() and not stop_told:
                    self._store.stop(self.epoch)
                    stop_told = True
                events = self._store.events(PUMP_WAIT)
                self._take_results([int(e[1:]) for e in events if e.startswith("r")])
            except Exception as exc:
                # Redis unreachable: the results wait there; ask again (progress stalls).
                logger.warning("comet_sync batch: Redis: %s: %s", type(exc).__name__, exc)
                self._closed.wait(PUMP_RETRY)
                continue
            for event in events:
                if event.startswith("s"):
                    with self._lock:
                        self._unstarted.pop(event[1:], None)
                elif event.startswith("e"):
                    chunk, _, error = event[1:].partition("\t")
                    self._chunk_ended(chunk, error or None)
                elif event == f"m{self.epoch}":
                    self._stop_marked()

    def _take_results(self, lines: list[int]) -> None:
        with self._lock:
            wanted = [line for line in lines if line in self._waiting]
        if not wanted:
            return
        found = self._store.fetch(wanted)
        taken = []
        with self._lock:
            for line, stored in found.items():
                entry = self._waiting.get(line)
                if entry is not None and stored is not None and stored.digest == entry.digest:
                    del self._waiting[line]
                    taken.append((entry, stored.result))
        for entry, result in taken:
            self._resolve(entry.future, result, entry.route)

    def _chunk_ended(self, chunk: str, error: str | None) -> None:
        with self._lock:
            self._unstarted.pop(chunk, None)
            left = [line for line, entry in self._waiting.items() if entry.chunk == chunk]
        if not left:
            return
        if not self._stop_asked.is_set():
            self._fail(
                f"a worker's chunk task failed: {error}"
                if error
                else f"a chunk ended without the results of {len(left)} line(s)"
            )
        self._drop_lines(left)

    def _stop_marked(self) -> None:
        # Every chunk that started in time to send is announced before the marker: the
        # others will send nothing.
        with self._lock:
            lines = [line for lines in self._unstarted.values() for line in lines]
            self._unstarted.clear()
        self._drop_lines(lines)


def _settle(store: RunStore, stopped: threading.Event) -> None:
    """Wait (up to ``SETTLE_WAIT``) for the chunks of earlier sessions, just silenced by this
    one's epoch, to finish the calls on their wire and record them: sent again from here, each
    would be paid twice. A killed worker's chunk lapses within its lease."""
    end = time.monotonic() + SETTLE_WAIT
    said = False
    while time.monotonic() < end and not stopped.is_set():
        try:
            running = store.running()
        except Exception:  # Redis unreachable: the sending will say so
            return
        if not running:
            return
        if not said:
            print(
                f"waiting for {running} chunk(s) of the last run to finish the calls on their "
                "wire (they send nothing more)",
                file=sys.stderr,
            )
            said = True
        stopped.wait(0.05)


def _result_of(future: Future[Any]) -> BatchResult | None:
    if future.cancelled():
        return None
    result: BatchResult | None = future.result()
    return result


def _record_of(result: BatchResult, route: str) -> RequestRecord:
    """A worker's call as this process's metrics count it (its attempts' statuses, and so
    the 429s absorbed, stay with the worker)."""
    usage = result.response.get("usage") if isinstance(result.response, dict) else None
    return RequestRecord(
        route=route,
        model=result.model,
        status=result.status_code,
        latency=result.latency,
        attempts=result.attempts,
        request_id=result.request_id,
        error=str(result.error.get("type")) if result.error is not None else None,
        usage=usage if isinstance(usage, dict) else None,
    )


def _read_run_id(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    run = data.get("run") if isinstance(data, dict) else None
    return run if isinstance(run, str) and run.isalnum() else None


def _write_run_id(path: str, run: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, name = tempfile.mkstemp(dir=folder, prefix=".celery-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"run": run}, f)
    # Atomic (a crash leaves no half-written id), and a link at ``path`` is replaced, never
    # written through.
    os.replace(name, path)


def run_batch_on(
    app: Any,
    input: str | None,
    output: str,
    *,
    resume: bool = False,
    retry_errors: bool = False,
    model: str | None = None,
    output_format: str | None = None,
    unordered: bool | None = None,
    chunk_size: int | None = None,
    grace: float | None = None,
    progress: bool = False,
) -> int:
    """``comet-sync batch INPUT -o OUTPUT --celery module:app`` from Python: the lines of
    ``input`` (a JSONL path, or None on ``resume`` for the run's own) run on ``app``'s
    workers, and ``output`` is written here, with the command's format, order and resume
    rules. ``app`` is the Celery app (set up with ``setup(app)``) or its ``"module:app"``.

    Returns the command's exit code: 0 every line answered, 1 some error lines, 3 the output
    could not be written, 4 a worker could not run chunks, 130 interrupted (Ctrl-C, from the
    main thread). Wrong arguments raise ``InvalidArgumentError`` before anything is sent.
    """
    from ..._cli import _batch, build_parser

    argv = ["batch"] + ([input] if input is not None else []) + ["-o", output]
    if isinstance(app, str):
        argv += ["--celery", app]
        app = None
    if resume:
        argv.append("--resume")
    if retry_errors:
        argv.append("--retry-errors")
    if model is not None:
        argv += ["--model", model]
    if output_format is not None:
        argv += ["--output-format", output_format]
    if unordered:
        argv.append("--unordered")
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InvalidArgumentError("chunk_size", f"expected an int >= 1, got {chunk_size!r}")
        argv += ["--chunk-size", str(chunk_size)]
    if grace is not None:
        argv += ["--grace", repr(float(grace))]
    if not progress:
        argv.append("--no-progress")
    parser = build_parser()

    def refuse(message: str) -> Any:
        raise InvalidArgumentError("run_batch_on", message)

    # argparse reports through error(): here an exception, not an exit of the caller's process.
    parser.error = refuse  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    args.command_parser.error = refuse
    return _batch(args, args.command_parser, celery_app=app)
