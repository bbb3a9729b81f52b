"""The metric instruments: the conventions' two GenAI client histograms, and ours.

OpenTelemetry's instruments are thread-safe; these are created once per instrumentation and
shared by every call's watch.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._errors import require

if TYPE_CHECKING:
    from ..._rate.protocol import LimiterProtocol

_metrics = require("opentelemetry.metrics", "otel")

__all__ = ["InFlight", "Instruments", "Paces"]

# The conventions' advised bucket boundaries (the reference instrumentation's too).
DURATION_BUCKETS = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
]  # fmt: skip
TOKEN_BUCKETS = [
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
]  # fmt: skip


class Instruments:
    def __init__(self, meter: Any) -> None:
        self.duration = meter.create_histogram(
            name="gen_ai.client.operation.duration",
            description="GenAI operation duration",
            unit="s",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            name="gen_ai.client.token.usage",
            description="Measures number of input and output tokens used",
            unit="{token}",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.in_flight = InFlight()
        meter.create_observable_up_down_counter(
            name="comet_sync.client.requests.in_flight",
            callbacks=[self.in_flight.observe],
            description="Calls begun and not yet ended: queued, waiting to retry, on the wire "
            "or streaming",
            unit="{request}",
        )
        self.paces = Paces()
        meter.create_observable_gauge(
            name="comet_sync.client.pace",
            callbacks=[self.paces.observe],
            description="Requests per second a model is paced at by our limiter, by where "
            "the pace came from (configured, header, learned); models not paced are absent",
            unit="{request}/s",
        )
        self.queue_wait = meter.create_histogram(
            name="comet_sync.client.queue.wait",
            description="Time an attempt our limiter held (for a slot, the pace, a hold on "
            "the server's word) waited before it was sent; attempts sent at once are not "
            "measured",
            unit="s",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.retries = meter.create_counter(
            name="comet_sync.client.retries",
            description="Attempts retried, by model and reason (the status, or the error)",
            unit="{retry}",
        )
        self.throttled = meter.create_counter(
            name="comet_sync.client.throttled",
            description="429 answers, retried or not, by model",
            unit="{response}",
        )


class InFlight:
    """Calls in flight by model, counted here and read when metrics are collected: two dict
    updates per call instead of two measurements through the SDK's aggregation."""

    def __init__(self) -> None:
        # Guards _counts: updated by every calling thread, read by the metric reader's. Held
        # for a dict update or a copy, never across anything else.
        self._lock = threading.Lock()
        self._counts: dict[tuple[tuple[str, Any], ...], int] = {}

    def add(self, key: tuple[tuple[str, Any], ...], delta: int) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + delta

    def observe(self, options: Any) -> Iterator[Any]:
        with self._lock:
            counts = list(self._counts.items())
        for key, count in counts:
            yield _metrics.Observation(count, dict(key))


class Paces:
    """The limiters of the clients that made calls, read for their pace at collection. Held
    weakly: a client closed and dropped is not kept alive for its metrics."""

    def __init__(self) -> None:
        # Guards _limiters: added to by calling threads, copied by the metric reader's. Held
        # for the set operation only; limiter.state() (a Redis round trip for a shared
        # limiter) is read outside it.
        self._lock = threading.Lock()
        self._limiters: weakref.WeakSet[LimiterProtocol] = weakref.WeakSet()
        # The limiter watched last: a process's calls are mostly one client's, and comparing
        # with it costs less than asking the set (which makes a weak reference to ask).
        self._last: weakref.ref[LimiterProtocol] | None = None

    def watch(self, limiter: LimiterProtocol) -> None:
        last = self._last
        if last is not None and last() is limiter:
            return
        if limiter not in self._limiters:  # (read without the lock, then sure)
            with self._lock, contextlib.suppress(TypeError):  # (a limiter with no weak refs)
                self._limiters.add(limiter)
        with contextlib.suppress(TypeError):
            self._last = weakref.ref(limiter)

    def observe(self, options: Any) -> Iterator[Any]:
        with self._lock:
            limiters = list(self._limiters)
        for limiter in limiters:
            try:
                models = limiter.state().models or {}
            except Exception:  # a shared limiter's store unreachable: no figure this time
                continue
            for name, model in models.items():
                if model.rate is not None and model.rate_source is not None:
                    yield _metrics.Observation(
                        model.rate,
                        {"gen_ai.request.model": name, "comet_sync.pace.source": model.rate_source},
                    )
