"""The project's task: one question to CometAPI, asked by a Celery worker."""

from __future__ import annotations

import os
from typing import Any

from comet_sync.contrib import celery as comet_celery

from .celery import app

MODEL = os.environ.get("COMET_SYNC_DEMO_MODEL", "gpt-4o-mini")


# CometTask: the call ends before the time limit, a long server wait requeues the task,
# a permanent error fails it. (Celery ships no type information: mypy --strict needs the
# ignore on its decorators.)
@app.task(base=comet_celery.CometTask, bind=True, soft_time_limit=60)  # type: ignore
def ask(self: Any, question: str) -> str | None:
    reply = comet_celery.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content
