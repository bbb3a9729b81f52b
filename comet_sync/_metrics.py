"""Folding call records into a bounded in-memory summary per (route, model).

Thread safety: :class:`Metrics` guards all of its state with one lock, held only while a record
is folded in or a snapshot copied out; percentiles are computed on the copy, outside the lock.
Memory is bounded twice: each (route, model) keeps a fixed window of recent latencies, and at
most ``max_keys`` pairs are kept (least recently used dropped), however many models appear.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ._rate.protocol import LimiterState
    from ._records import RequestRecord

__all__ = ["Metrics", "RouteStats", "Snapshot", "format_table"]

DEFAULT_LATENCY_WINDOW = 1024
# Histogram bucket bounds in seconds (cumulative counts, for Prometheus): chat calls run from
# tens of milliseconds (a cached or tiny answer) to minutes (a long reasoning answer).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DEFAULT_MAX_KEYS = 256


@dataclass(frozen=True)
class RouteStats:
    """A snapshot of one (route, model)'s calls."""

    route: str
    model: str | None
    calls: int
    ok: int
    failed: int
    by_status: dict[str, int]
    retries: int
    throttled: int  # 429 answers seen, retried or not
    cache_hits: int  # answered from the response cache; not in the latency percentiles
    latency_buckets: tuple[tuple[float, int], ...]  # (upper bound, calls at or under it)
    latency_sum: float
    latency_count: int
    p50: float | None
    p95: float | None
    p99: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    fallbacks: int = 0  # calls that moved from this model to a fallback
    # The same calls' time on the wire alone (RequestRecord.wire_latency): p50 far under the
    # end-to-end p50 means calls wait in our limiter or between retries, not at the server.
    wire_p50: float | None = None
    wire_p95: float | None = None


@dataclass
class _RouteTotals:
    calls: int = 0
    ok: int = 0
    retries: int = 0
    throttled: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=DEFAULT_LATENCY_WINDOW))
    wire: deque[float] = field(default_factory=lambda: deque(maxlen=DEFAULT_LATENCY_WINDOW))
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0
    latency_count: int = 0
    fallbacks: int = 0


class Snapshot(dict["tuple[str, str | None]", "RouteStats"]):
    """Per-(route, model) :class:`RouteStats`, keyed by ``(route, model)``, plus ``.limiter``:
    the client's rate-control state at the time (a ``LimiterState``, or None)."""

    limiter: LimiterState | None = None


class Metrics:
    """Folds :class:`RequestRecord` objects into per-(route, model) counters."""

    def __init__(
        self,
        *,
        latency_window: int = DEFAULT_LATENCY_WINDOW,
        max_keys: int = DEFAULT_MAX_KEYS,
        limiter_state: Callable[[], Any] | None = None,
    ) -> None:
        self._limiter_state = limiter_state
        self._lock = threading.Lock()
        self._window = latency_window
        # Least recently used first; past max_keys the first is dropped.
        self._stats: OrderedDict[tuple[str, str | None], _RouteTotals] = OrderedDict()
        self._max_keys = max_keys

    def record(self, rec: RequestRecord) -> None:
        key = (rec.route, rec.model)
        usage = rec.usage or {}
        with self._lock:
            if rec.fallback_from is not None:
                left = self._stats.get((rec.route, rec.fallback_from))
                if left is not None:
                    left.fallbacks += 1
            acc = self._stats.get(key)
            if acc is None:
                acc = _RouteTotals(
                    latencies=deque(maxlen=self._window), wire=deque(maxlen=self._window)
                )
                self._stats[key] = acc
                if len(self._stats) > self._max_keys:
                    self._stats.popitem(last=False)
            else:
                self._stats.move_to_end(key)
            acc.calls += 1
            acc.ok += rec.ok
            acc.by_status[_status_key(rec)] += 1
            if rec.cached:
                # A hit's microseconds would make the API look fast: counted apart.
                acc.cache_hits += 1
                return
            acc.retries += max(rec.attempts - 1, 0)
            acc.throttled += rec.attempt_statuses.count(429)
            acc.latencies.append(rec.latency)
            acc.wire.append(rec.wire_latency)
            acc.latency_sum += rec.latency
            acc.latency_count += 1
            index = bisect.bisect_left(LATENCY_BUCKETS, rec.latency)
            if index < len(LATENCY_BUCKETS):
                acc.buckets[index] += 1
            # The Responses API names them input and output tokens.
            acc.prompt_tokens += _int(usage.get("prompt_tokens", usage.get("input_tokens")))
            acc.completion_tokens += _int(
                usage.get("completion_tokens", usage.get("output_tokens"))
            )
            acc.total_tokens += _int(usage.get("total_tokens"))

    def snapshot(self) -> Snapshot:
        """A copy of every (route, model)'s figures, keyed by (route, model)."""
        with self._lock:
            copied = [
                (
                    key,
                    acc,
                    sorted(acc.latencies),
                    sorted(acc.wire),
                    dict(acc.by_status),
                    list(acc.buckets),
                    acc.latency_sum,
                    acc.latency_count,
                )
                for key, acc in self._stats.items()
            ]
        snap = Snapshot(
            {
                key: RouteStats(
                    route=key[0],
                    model=key[1],
                    calls=acc.calls,
                    ok=acc.ok,
                    failed=acc.calls - acc.ok,
                    by_status=by_status,
                    retries=acc.retries,
                    throttled=acc.throttled,
                    cache_hits=acc.cache_hits,
                    latency_buckets=tuple(zip(LATENCY_BUCKETS, itertools.accumulate(buckets))),
                    latency_sum=lat_sum,
                    latency_count=lat_count,
                    p50=_percentile(lat, 0.50),
                    p95=_percentile(lat, 0.95),
                    p99=_percentile(lat, 0.99),
                    prompt_tokens=acc.prompt_tokens,
                    completion_tokens=acc.completion_tokens,
                    total_tokens=acc.total_tokens,
                    fallbacks=acc.fallbacks,
                    wire_p50=_percentile(wire, 0.50),
                    wire_p95=_percentile(wire, 0.95),
                )
                for key, acc, lat, wire, by_status, buckets, lat_sum, lat_count in copied
            }
        )
        snap.limiter = self._limiter_state() if self._limiter_state is not None else None
        return snap

    def reset(self) -> None:
        with self._lock:
            self._stats.clear()


def _status_key(rec: RequestRecord) -> str:
    if rec.cached:
        return "cached"
    if rec.status is not None:
        return str(rec.status)
    return rec.error or "no response"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    rank = max(int(-(-q * len(sorted_values) // 1)), 1)  # ceil(q * n), at least 1
    return sorted_values[rank - 1]


def format_table(stats: Mapping[Any, RouteStats]) -> str:
    """A plain-text table of a snapshot, one row per (route, model). The p50/p95/p99 columns
    are whole calls, waits and time queued in our limiter included; "wire" columns only the
    attempts' time on the wire."""
    header = (
        "route",
        "model",
        "calls",
        "ok",
        "failed",
        "retries",
        "429s",
        "cached",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "wire p50 ms",
        "wire p95 ms",
        "tokens",
    )
    rows: list[tuple[str, ...]] = [header]
    for st in sorted(stats.values(), key=lambda s: (s.route, s.model or "")):
        rows.append(
            (
                st.route,
                st.model or "-",
                str(st.calls),
                str(st.ok),
                str(st.failed),
                str(st.retries),
                str(st.throttled),
                str(st.cache_hits),
                _ms(st.p50),
                _ms(st.p95),
                _ms(st.p99),
                _ms(st.wire_p50),
                _ms(st.wire_p95),
                str(st.total_tokens),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"
