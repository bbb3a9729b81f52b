"""Prometheus export of a client's metrics (``pip install 'comet-sync[prometheus]'``).

>>> from comet_sync.contrib.prometheus import metrics_text
>>> body, content_type = metrics_text(client)

Per (route, model): request counts by status, retries, 429s, cache hits, tokens, and a
latency histogram; plus the limiter's current concurrency limit, in-flight count and learned
rate. The figures are read from ``client.metrics.snapshot()`` at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

from ._errors import require

_prom = require("prometheus_client", "prometheus")
_core = require("prometheus_client.core", "prometheus")

__all__ = ["CometSyncCollector", "metrics_text", "registry_for"]


class CometSyncCollector:
    """A collector that reads a client's metrics when Prometheus scrapes."""

    def __init__(self, client: Any | Callable[[], Any]) -> None:
        # A callable lets a framework hand over the process's client lazily.
        self._get = (
            client if callable(client) and not hasattr(client, "metrics") else (lambda: client)
        )

    def collect(self) -> Iterator[Any]:
        client: Any = self._get()
        snapshot = client.metrics.snapshot()
        labels = ["route", "model"]
        requests = _core.CounterMetricFamily(
            "comet_sync_requests", "Calls by final status", labels=[*labels, "status"]
        )
        retries = _core.CounterMetricFamily("comet_sync_retries", "Retries", labels=labels)
        throttled = _core.CounterMetricFamily("comet_sync_throttled", "429 answers", labels=labels)
        hits = _core.CounterMetricFamily(
            "comet_sync_cache_hits", "Response cache hits", labels=labels
        )
        tokens = _core.CounterMetricFamily(
            "comet_sync_tokens", "Tokens used", labels=[*labels, "kind"]
        )
        latency = _core.HistogramMetricFamily(
            "comet_sync_request_latency_seconds",
            "Whole-call latency, retries included",
            labels=labels,
        )
        for stats in snapshot.values():
            key = [stats.route, stats.model or ""]
            for status, count in stats.by_status.items():
                requests.add_metric([*key, status], count)
            retries.add_metric(key, stats.retries)
            throttled.add_metric(key, stats.throttled)
            hits.add_metric(key, stats.cache_hits)
            tokens.add_metric([*key, "prompt"], stats.prompt_tokens)
            tokens.add_metric([*key, "completion"], stats.completion_tokens)
            buckets = [(str(bound), count) for bound, count in stats.latency_buckets]
            buckets.append(("+Inf", stats.latency_count))
            latency.add_metric(key, buckets, stats.latency_sum)
        yield from (requests, retries, throttled, hits, tokens, latency)
        state = snapshot.limiter
        if state is not None:
            yield _core.GaugeMetricFamily(
                "comet_sync_concurrency_limit",
                "Current concurrency limit",
                value=state.concurrency_limit,
            )
            yield _core.GaugeMetricFamily(
                "comet_sync_in_flight", "Requests on the wire", value=state.in_flight
            )
            yield _core.GaugeMetricFamily(
                "comet_sync_learned_rate",
                "Learned requests/s (0: none)",
                value=state.learned_rate or 0.0,
            )
            pace = _core.GaugeMetricFamily(
                "comet_sync_model_pace",
                "Requests/s a model is paced at, by where the pace "
                "came from (configured, header, learned)",
                labels=["model", "source"],
            )
            limit = _core.GaugeMetricFamily(
                "comet_sync_model_concurrency_limit",
                "A model's concurrency limit",
                labels=["model"],
            )
            deferred = _core.CounterMetricFamily(
                "comet_sync_model_deferred",
                "Sends our throttle or retry quota deferred",
                labels=["model"],
            )
            for name, model in (state.models or {}).items():
                if model.rate is not None and model.rate_source is not None:
                    pace.add_metric([name, model.rate_source], model.rate)
                limit.add_metric([name], model.concurrency_limit)
                deferred.add_metric([name], model.deferred)
            yield from (pace, limit, deferred)


def registry_for(client: Any) -> Any:
    registry = _prom.CollectorRegistry(auto_describe=False)
    registry.register(CometSyncCollector(client))
    return registry


def metrics_text(client: Any) -> tuple[bytes, str]:
    """(body, content type) of the exposition format, for a metrics endpoint."""
    return _prom.generate_latest(registry_for(client)), _prom.CONTENT_TYPE_LATEST
