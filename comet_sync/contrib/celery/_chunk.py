"""The chunk task: a slice of a batch's lines, run on a worker through the process's client.

``setup(app)`` registers it on the app (``comet_sync.batch_chunk``), so any worker started
from the app's module runs it. A chunk's lines go through the local batch engine's own
``run_batch`` (the same per-line call, error lines and stopping as ``comet-sync batch``), on
``client()``; each result is recorded on Redis the moment it finishes (``_store``), so what a
killed worker had finished is kept.

Delivered again (``acks_late`` with ``reject_on_worker_lost``: a prefork child killed mid-chunk
gives its message back at once; a whole worker killed leaves it to the broker's
``visibility_timeout``), a chunk skips the lines already recorded and sends only the rest.
It sends nothing once its session is no longer live (the coordinator stopped, or a resumed
coordinator began another): checked as it starts, and every ``STOP_POLL`` seconds while it
runs, which stops its ``run_batch`` as Ctrl-C stops a local one (calls on the wire finish and
are recorded).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from ..._batch.engine import run_batch
from ._store import DEFAULT_TTL, RunStore, job_of

__all__ = ["CHUNK_TASK", "register", "run_chunk"]

CHUNK_TASK = "comet_sync.batch_chunk"
# How often a running chunk asks whether its session is still live.
STOP_POLL = 0.2

_redis_lock = threading.Lock()
_redis_clients: dict[tuple[int, str], Any] = {}


def register(app: Any) -> None:
    """Register the chunk task on ``app`` (idempotent: Celery keeps the first)."""
    from ._task import CometTask

    # Called, not used as a decorator: Celery is untyped, and mypy --strict refuses an untyped
    # decorator on a typed function.
    app.task(
        name=CHUNK_TASK,
        base=CometTask,
        bind=True,
        shared=False,
        # The message is acknowledged once the chunk is done, and given back if the process
        # running it dies: a chunk is never lost with a worker.
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )(_chunk_task)


def _chunk_task(
    task: Any,
    run: str,
    epoch: int,
    chunk: str,
    lines: Sequence[Sequence[Any]],
    ttl: float = DEFAULT_TTL,
) -> int:
    from . import _worker

    url, namespace = _worker.redis_location(task.app)
    store = RunStore(_redis_for(url), namespace, run, ttl)
    return run_chunk(store, epoch, chunk, lines, _worker.client)


def run_chunk(
    store: RunStore, epoch: int, chunk: str, lines: Sequence[Sequence[Any]], make_client: Any
) -> int:
    """Run ``lines`` (``[line, digest, job payload]`` each) of session ``epoch``; the number of
    results this delivery recorded."""
    if not store.start_chunk(epoch, chunk):
        return 0  # stopped, or a later session took over: nothing is sent
    error: str | None = None
    done = threading.Event()
    recorded = 0
    try:
        already = store.recorded(int(item[0]) for item in lines)
        store.announce(already)
        digests = {int(item[0]): str(item[1]) for item in lines}
        jobs = [job_of(item[2]) for item in lines if int(item[0]) not in already]
        if jobs:
            stop = threading.Event()
            watcher = threading.Thread(
                target=_watch,
                args=(store, epoch, chunk, stop, done),
                daemon=True,
                name="comet-chunk",
            )
            watcher.start()
            run = run_batch(make_client(), jobs, ordered=False, stop=stop)
            try:
                for result in run:
                    if result.line is not None:
                        recorded += store.record(digests[result.line], result)
            finally:
                run.close()  # (a failed record leaves nothing running behind it)
    except Exception as exc:
        # Said to the coordinator, which stops the run: a worker that cannot run chunks (no
        # key, a bad setting) must not have every chunk of the batch fail in turn.
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        done.set()
        # (If Redis is gone this fails too; the coordinator then waits for the redelivery.)
        store.end_chunk(chunk, error)
    return recorded


def _watch(
    store: RunStore, epoch: int, chunk: str, stop: threading.Event, done: threading.Event
) -> None:
    """Renew the chunk's lease while it runs (also after a stop, while its calls on the wire
    finish: a resumed coordinator waits for them), and stop it when its session ends."""
    while not done.wait(STOP_POLL):
        try:
            live = store.beat(epoch, chunk)
        except Exception:  # Redis unreachable for a moment: ask again
            continue
        if not live:
            stop.set()


def _redis_for(url: str) -> Any:
    """This process's connection pool to ``url`` (built after any fork, like the client)."""
    key = (os.getpid(), url)
    with _redis_lock:
        found = _redis_clients.get(key)
        if found is None:
            import redis

            found = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
            _redis_clients[key] = found
        return found
