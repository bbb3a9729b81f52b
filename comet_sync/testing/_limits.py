"""The fake server's own limits, as CometAPI's upstreams have them: a cap on requests in flight
and a token bucket of requests per second. Called under the server's lock."""

from __future__ import annotations

__all__ = ["ServerLimits"]


class ServerLimits:
    """Whether one more request is over a limit, and which. Not thread-safe on its own: the
    server calls it under its lock."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._tokens: float | None = None  # refilled to the burst at the first request
        self._bucket_time = 0.0

    def over(
        self,
        *,
        in_flight: int,
        max_in_flight: int | None,
        rps: float | None,
        burst: float | None,
        now: float,
    ) -> str | None:
        """Why a request arriving now, ``in_flight`` with it, is refused; None if it is not."""
        if max_in_flight is not None and in_flight > max_in_flight:
            return f"too many requests in flight (limit {max_in_flight})"
        if rps is not None:
            capacity = burst if burst is not None else max(1.0, rps / 10)
            if self._tokens is None:
                self._tokens, self._bucket_time = capacity, now
            self._tokens = min(capacity, self._tokens + (now - self._bucket_time) * rps)
            self._bucket_time = now
            if self._tokens < 1:
                return f"rate limit {rps:g} requests/s exceeded"
            self._tokens -= 1
        return None
