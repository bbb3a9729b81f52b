"""A Celery task base class for tasks that call CometAPI: each wait and each retry happens in
one layer only.

* The task's time limit is the calls' deadline: everything the task sends through comet_sync
  (retries and waits included) ends a margin before ``soft_time_limit`` (or ``time_limit``),
  with comet_sync's own timeout error, instead of being cut by Celery mid-flight and run again
  (paid twice).
* Short server waits are slept by the client's retry loop, within that deadline. A retryable
  error carrying a server wait the loop would not sleep (longer than the client's
  ``max_wait``, or than what the task has left) ends the call at once and becomes
  ``self.retry(countdown=<that wait, plus up to a tenth>)``: the worker slot is free meanwhile.
* Anything else (a permanent error, retries spent, a timeout) fails the task at once. Celery's
  ``autoretry_for`` is refused: on top of ours it would retry every retry again.
"""

from __future__ import annotations

import random as _random
from contextlib import nullcontext
from typing import Any, Callable

from celery import Task

from ..._call.deadline import deadline, time_left
from ..._call.retry import is_retryable
from ..._exceptions import APIError, APIStatusError, LimiterTimeoutError
from . import _worker

__all__ = ["DEADLINE_MARGIN", "CometTask", "requeue_after", "task_budget"]

# The calls end this long before the task's time limit (at most a fifth of the limit): room
# to raise, log and store the failure before Celery's own SoftTimeLimitExceeded.
DEADLINE_MARGIN = 1.0
# A requeued task comes back after the server's wait plus up to this share of it, at random:
# tasks refused in the same second must not all come back in the same instant.
COUNTDOWN_JITTER = 0.1


def task_budget(
    soft_time_limit: float | None, time_limit: float | None, margin: float = DEADLINE_MARGIN
) -> float | None:
    """Seconds the calls of a task with these limits may take; None when it has none."""
    limits = [float(x) for x in (soft_time_limit, time_limit) if x]
    if not limits:
        return None
    limit = min(limits)
    return limit - min(margin, limit / 5)


def requeue_after(
    exc: BaseException,
    *,
    max_wait: float,
    left: float | None,
    random: Callable[[], float] = _random.random,
) -> float | None:
    """The countdown to retry the task with, or None when ``exc`` must fail it.

    Requeued: an error that waiting heals (a 429, a 503, ...; or our limiter holding the call
    on the server's word, nothing sent) whose server-asked wait is longer than ``max_wait`` or
    does not fit in the ``left`` seconds of the task's budget, so the call did not sleep it.
    """
    if isinstance(exc, LimiterTimeoutError):
        wait = exc.retry_after
    elif isinstance(exc, APIStatusError):
        wait = exc.retry_after if is_retryable(exc) else None
    else:
        return None
    if wait is None:
        return None
    if wait > max_wait or (left is not None and wait >= left):
        return wait + wait * COUNTDOWN_JITTER * random()
    return None


# (celery has no type information: Task is Any; subclassing it is allowed in pyproject.toml)
class CometTask(Task):
    """Base class of tasks that call CometAPI: ``@app.task(base=CometTask, bind=True)``.

    Calls through comet_sync inside the task share a deadline a margin (``deadline_margin``,
    1 s, at most a fifth of the limit) before its ``soft_time_limit`` / ``time_limit``; a long
    server wait retries the task with that countdown (counted against the task's
    ``max_retries``; past it the task fails with the error); any other error fails it.
    """

    deadline_margin: float = DEADLINE_MARGIN

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "autoretry_for", ()):
            raise TypeError(
                f"task {cls.__name__}: CometTask does not take autoretry_for: comet_sync "
                "retries what heals within the call and requeues long server waits itself; "
                "Celery retrying on top would send every retried request again"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        budget = self._budget()
        with nullcontext() if budget is None else deadline(budget):
            try:
                return super().__call__(*args, **kwargs)
            except APIError as exc:
                # time_left(): what the task's budget leaves (None without one), read here,
                # inside the block, where the call ended.
                countdown = requeue_after(exc, max_wait=_worker.max_wait(), left=time_left())
                if countdown is None:
                    raise
                # (retry raises Celery's Retry itself, carrying exc)
                raise self.retry(exc=exc, countdown=countdown) from exc

    def _budget(self) -> float | None:
        # The call's own limits (apply_async(soft_time_limit=...)), else the task's, else the
        # app's defaults: the order in which the worker picks the limits it enforces.
        request = getattr(self, "request", None)
        given = getattr(request, "timelimit", None) or (None, None)
        hard, soft = given if len(given) == 2 else (None, None)
        conf = self.app.conf
        soft = soft or self.soft_time_limit or conf.task_soft_time_limit
        hard = hard or self.time_limit or conf.task_time_limit
        return task_budget(soft, hard, self.deadline_margin)
