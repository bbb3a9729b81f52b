"""Upstream failures as HTTP answers a view can give its own clients.

A rate limit upstream, or our own rate control holding the call past its budget, becomes
503 with ``Retry-After``, so the caller backs off too; an upstream timeout becomes 504; any
other upstream failure 502. The body is JSON and carries the request id, never the key.
"""

from __future__ import annotations

import math
from typing import Any

from .._exceptions import APIError, APITimeoutError, LimiterTimeoutError, RateLimitError

__all__ = ["error_response", "require"]

# When the server gave no Retry-After, ask the view's caller to wait this long.
DEFAULT_RETRY_AFTER = 5


def error_response(exc: APIError) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, JSON body) for an upstream failure."""
    headers: dict[str, str] = {}
    if isinstance(exc, (RateLimitError, LimiterTimeoutError)):
        # A call our limiter held (a hold on the server's word, a pace, an outage) is the
        # same news as a 429: come back later, not "the upstream is slow".
        status = 503
        if isinstance(exc, RateLimitError):
            kind = "upstream_rate_limited"
        else:
            kind = "upstream_unavailable" if exc.outage else "held_by_rate_control"
        wait = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    elif isinstance(exc, APITimeoutError):
        status, kind = 504, "upstream_timeout"
    else:
        status, kind = 502, "upstream_error"
    body = {"error": {"type": kind, "message": str(exc), "request_id": exc.request_id}}
    return status, headers, body


def require(module: str, extra: str) -> Any:
    """Import an optional library, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed: it comes with comet_sync's {extra!r} extra "
            f"(from a checkout: pip install -e '.[{extra}]')"
        ) from exc
