"""Celery integration (``pip install 'comet-sync[celery]'``): one client per worker process,
one quota for every worker, and retries in one place.

celery_app.py::

    from celery import Celery
    from comet_sync.contrib.celery import CometTask, client, setup

    app = Celery("app", broker="redis://localhost:6379/0")
    app.conf.comet_sync = {"max_concurrency": 8, "redis": {"max_concurrency": 16}}
    setup(app)  # keyword arguments here win over app.conf.comet_sync

    @app.task(base=CometTask, bind=True, soft_time_limit=60)
    def ask(self, question):
        reply = client().chat.completions.create(model="gpt-4o-mini", messages=[...])
        return reply.choices[0].message.content

``setup`` (in ``_worker``): the client of each worker process, built after the fork, with a
``RedisLimiter`` on the broker's Redis shared by every worker; closed at worker shutdown.
``client()``: that process's client, for tasks. ``CometTask`` (in ``_task``): the task's time
limit bounds its calls, long server waits requeue the task, permanent errors fail it.
``run_batch_on(app, input, output)`` (in ``_coordinator``; the CLI's ``comet-sync batch
--celery module:app``): a batch whose lines run as chunk tasks (``_chunk``) on the workers,
their results recorded on Redis (``_store``) and written here.
"""

from __future__ import annotations

from .._errors import require

require("celery", "celery")

from ._coordinator import DEFAULT_CHUNK_SIZE, run_batch_on  # noqa: E402
from ._task import CometTask, requeue_after, task_budget  # noqa: E402
from ._worker import DEFAULT_MAX_WAIT, client, setup  # noqa: E402

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_WAIT",
    "CometTask",
    "client",
    "requeue_after",
    "run_batch_on",
    "setup",
    "task_budget",
]
