"""A Celery app whose tasks call CometAPI (``pip install -e '.[celery]'``, a Redis server).

Start a worker, then send it a question from another shell::

    celery -A examples.celery_app.tasks worker --pool threads --concurrency 8 --loglevel INFO
    python -m examples.celery_app.tasks "Say hello."

``CELERY_BROKER_URL`` names the broker (default ``redis://localhost:6379/0``; the result store
is the same Redis); the key comes from ``COMETAPI_KEY``. Every worker process gets its own
client, all of them share one limit on that Redis, and a long ``Retry-After`` requeues the
task instead of holding a worker (README, "Running on Celery").
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery

from comet_sync.contrib import celery as comet_celery

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
TASK = "examples.celery_app.ask"

app = Celery("celery_app", broker=BROKER, backend=BROKER)
app.conf.comet_sync = {
    "max_concurrency": 8,  # each worker process's client
    "redis": {"max_concurrency": 16},  # every worker of every host, on the broker's Redis
}
comet_celery.setup(app)


# (Celery ships no type information: mypy --strict needs the ignore on its decorators.) Named,
# so that sending it from `python -m` (where this module is __main__) names the same task.
@app.task(name=TASK, base=comet_celery.CometTask, bind=True, soft_time_limit=60)  # type: ignore
def ask(self: Any, question: str) -> str | None:
    reply = comet_celery.client().chat.completions.create(
        model=os.environ.get("COMET_SYNC_DEMO_MODEL", "gpt-4o-mini"),
        messages=[{"role": "user", "content": question}],
    )
    return reply.choices[0].message.content


if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or "Say hello."
    print(app.send_task(TASK, args=[question]).get(timeout=120))
