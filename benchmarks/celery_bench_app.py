"""The Celery app benchmarks/celery.py runs real workers of
(``celery -A benchmarks.celery_bench_app worker``, from the repository's root).

Everything comes from the environment the benchmark gives each worker: the broker, the result
store, the rate-limited server, and whether tasks are acknowledged late (the kill scenario).
comet_sync is set up with ``setup(app)``'s defaults: the shared RedisLimiter on the broker.

Each task notes its start (worker, task id, job) in a Redis list of the marks database: after a
worker is SIGKILLed, its started tasks whose messages are still unacknowledged are the ones
run again elsewhere, whose calls may be paid twice.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from celery import Celery

from comet_sync.contrib.celery import CometTask, client, setup

MODEL = "gpt-4o-mini"
# The kill scenario: a task is acknowledged after it ran, and a message a dead worker held is
# given to another once it has been unacknowledged this long (the broker's visibility timeout).
ACKS_LATE = os.environ.get("BENCH_ACKS_LATE") == "1"
VISIBILITY_TIMEOUT = float(os.environ.get("BENCH_VISIBILITY_TIMEOUT", "10"))

app = Celery(
    "comet_sync_bench",
    broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:1/0"),
    backend=os.environ.get("BENCH_BACKEND", "redis://127.0.0.1:1/1"),
)
app.conf.update(
    # One task reserved per pool slot: a worker holds no more than it runs.
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_acks_late=ACKS_LATE,
    task_reject_on_worker_lost=ACKS_LATE,
)
if ACKS_LATE:
    app.conf.broker_transport_options = {
        "visibility_timeout": VISIBILITY_TIMEOUT,
        # Look for expired messages every second (kombu's default sweep is ~100 s apart): the
        # dead worker's tasks come back a visibility timeout after they were taken, not later.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
app.conf.comet_sync = {"base_url": os.environ.get("BENCH_BASE_URL", "http://127.0.0.1:1/v1")}
setup(app)

_marks_lock = threading.Lock()
_marks: Any = None


def marks() -> Any:
    """This process's connection to the marks database (redis-py's pool is thread-safe)."""
    global _marks
    with _marks_lock:  # no I/O here: redis-py connects on first use
        if _marks is None:
            _marks = redis.Redis.from_url(os.environ.get("BENCH_MARKS", "redis://127.0.0.1:1/2"))
        return _marks


@app.task(base=CometTask, bind=True, name="bench.ask")
def ask(self: Any, content: str) -> dict[str, Any]:
    host = self.request.hostname
    marks().rpush("starts", f"{host} {self.request.id} {content}")
    reply = client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}]
    )
    return {"host": host, "answer": reply.choices[0].message.content}
