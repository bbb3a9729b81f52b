"""The metric instruments: the conventions' two GenAI client histograms, and ours.

OpenTelemetry's instruments are thread-safe; these are created once per instrumentation and
shared by every call's watch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Instruments"]

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
        self.in_flight = meter.create_up_down_counter(
            name="comet_sync.client.requests.in_flight",
            description="Calls begun and not yet ended: queued, waiting to retry, on the wire "
            "or streaming",
            unit="{request}",
        )
        self.queue_wait = meter.create_histogram(
            name="comet_sync.client.queue.wait",
            description="Time an attempt waited for our limiter (a slot, the pace, a hold on "
            "the server's word) before it was sent",
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
