"""The Celery app tests/test_celery.py runs real workers of (``celery -A tests.celery_app``).

Its broker, result store and fake server come from the environment the test gives the worker.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery

from comet_sync.contrib.celery import CometTask, client, setup

app = Celery(
    "comet_sync_tests",
    broker=os.environ.get("COMET_TEST_BROKER", "redis://127.0.0.1:1/0"),
    backend=os.environ.get("COMET_TEST_BACKEND", "redis://127.0.0.1:1/1"),
)
app.conf.update(
    # One task reserved per pool slot: the tasks spread over both workers and every child.
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    broker_connection_retry_on_startup=True,
    # comet_sync's exceptions pickle (without the key): the test sees the task's own error.
    # (Results only: tasks stay JSON, and a worker run as root refuses pickled tasks.)
    result_serializer="pickle",
    result_accept_content=["json", "pickle"],
)
app.conf.comet_sync = {
    "base_url": os.environ.get("COMET_TEST_BASE_URL", "http://127.0.0.1:1/v1"),
    "max_wait": 1.0,
    "redis": {
        "max_concurrency": int(os.environ.get("COMET_TEST_SHARED_CAP", "2")),
        # A killed process's slots come back after this (the batch test kills one): short, so
        # the rest of the run does not wait out the default 10 s.
        "lease_ttl": float(os.environ.get("COMET_TEST_LEASE_TTL", "10")),
    },
}
setup(app)


@app.task(base=CometTask, bind=True)
def ask(self: Any, text: str, model: str = "m") -> dict[str, Any]:
    c = client()
    reply = c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return {
        "pid": os.getpid(),
        "client": id(c),
        "thread": threading.get_ident(),
        "hostname": self.request.hostname,
        "retries": self.request.retries,
        "answer": reply.choices[0].message.content,
    }


@app.task(base=CometTask, bind=True)
def fork_check(self: Any) -> dict[str, Any]:
    """Use the client, fork, and in the child ask for the client again and call with it: the
    child's exit status says whether it got its parent's client (3) or its call failed (4)."""
    parent = client()
    parent.chat.completions.create(model="m", messages=[{"role": "user", "content": "parent"}])
    pid = os.fork()
    if pid == 0:  # the child: leave with os._exit, whatever happens, never back into Celery
        code = 0
        try:
            child = client()
            if child is parent:
                code = 3
            else:
                child.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "child"}]
                )
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {"exit": os.waitstatus_to_exitcode(status), "pid": os.getpid(), "child": pid}
