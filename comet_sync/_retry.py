"""Retry decisions: what is retried and how long to wait. Pure functions, no I/O, no sleeping.

The loop that acts on these decisions is in ``_call.py``; it drives ``backoff``.

What is retried (``../shared/cometapi.md``): 429, 500, 502, 503, 504, 524, connection errors and
timeouts. Never other 4xx, and never CometAPI's permanent look-alikes: a 500 whose code is
``invalid_request`` (a malformed request), a 503 whose code is ``model_not_found``, and a 429
that says the quota or balance is spent, none of which heal by waiting.

How long: full jitter, ``U(0, min(max_wait, base * 2**n))`` for the n-th retry (n from 0),
so a herd of clients that failed together spreads out instead of coming back together. A
``Retry-After`` / ``retry-after-ms`` from the server is a floor under that wait (plus up to a
tenth of it in jitter); a request
that asks for more than ``max_wait``, or a wait that would run past the call's
``total_timeout``, ends the call at once instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ._config import RetryConfig
from ._exceptions import APIConnectionError, APIError, APIStatusError, LimiterTimeoutError

__all__ = [
    "RETRYABLE_STATUSES",
    "Decision",
    "backoff_window",
    "decide",
    "is_retryable",
]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 524})
# A server-asked wait is stretched by up to this share of itself, at random.
FLOOR_JITTER = 0.1

_QUOTA_CODES = frozenset(
    {"insufficient_quota", "quota_exceeded", "insufficient_user_quota", "billing_hard_limit"}
)
_QUOTA_WORDS = re.compile(r"quota|balance|insufficient|billing|credit", re.IGNORECASE)


def is_retryable(exc: BaseException) -> bool:
    """Whether waiting and sending the same request again can succeed."""
    if isinstance(exc, LimiterTimeoutError):
        return False  # our own limiter held it until its budget ran out: nothing can heal
    if isinstance(exc, APIConnectionError):
        return True
    if not isinstance(exc, APIStatusError):
        return False
    status = exc.status_code
    if status not in RETRYABLE_STATUSES:
        return False
    if status == 500 and exc.code == "invalid_request":
        return False
    if status == 503 and exc.code == "model_not_found":
        return False
    return not (status == 429 and is_quota_exhausted(exc))


def is_quota_exhausted(exc: APIStatusError) -> bool:
    if exc.code in _QUOTA_CODES:
        return True
    return bool(_QUOTA_WORDS.search(exc.message or ""))


def attempts(count: int) -> str:
    """ "1 attempt", "3 attempts"."""
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def backoff_window(retry_number: int, config: RetryConfig) -> float:
    """Upper end of the full-jitter window before the given retry (0 for the first)."""
    # Cap the exponent: 2**1100 overflows a float, and the window is capped long before.
    return min(config.max_wait, config.backoff_base * 2.0 ** min(retry_number, 60))


@dataclass(frozen=True)
class Decision:
    """Retry after ``wait`` seconds, or stop; ``reason`` says why a retryable error stopped."""

    retry: bool
    wait: float = 0.0
    reason: str | None = None


def decide(
    exc: BaseException,
    *,
    retry_number: int,
    config: RetryConfig,
    elapsed: float,
    random: Callable[[], float],
) -> Decision:
    """Whether the call that just failed with ``exc`` retries, and after how long.

    ``retry_number`` counts the retries already made; ``elapsed`` is the call's time so far on
    a monotonic clock; ``random`` returns a float in [0, 1).
    """
    if not isinstance(exc, APIError) or not is_retryable(exc):
        return Decision(retry=False)
    if retry_number >= config.max_retries:
        return Decision(
            retry=False,
            reason=f"{attempts(retry_number + 1)} made (max_retries={config.max_retries})",
        )
    wait = random() * backoff_window(retry_number, config)
    floor = exc.retry_after if isinstance(exc, APIStatusError) else None
    if floor is not None:
        if floor > config.max_wait:
            return Decision(
                retry=False,
                reason=(
                    f"server asked to wait {floor:.3g}s, more than max_wait={config.max_wait:g}s"
                ),
            )
        # At least what the server asked, plus a little jitter: servers round waits up to
        # whole seconds, and every request refused in the same second would otherwise
        # come back in the same instant.
        wait = min(config.max_wait, max(wait, floor) + floor * FLOOR_JITTER * random())
    if config.total_timeout is not None and elapsed + wait >= config.total_timeout:
        left = max(config.total_timeout - elapsed, 0.0)
        return Decision(
            retry=False,
            reason=(
                f"the next wait of {wait:.3g}s does not fit in the {left:.3g}s left of "
                f"total_timeout={config.total_timeout:g}s"
            ),
        )
    return Decision(retry=True, wait=wait)
