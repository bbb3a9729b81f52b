"""OpenTelemetry traces and metrics in the GenAI semantic conventions
(``pip install 'comet-sync[otel]'``).

>>> from comet_sync.contrib.otel import CometSyncInstrumentor
>>> CometSyncInstrumentor().instrument()       # the global tracer and meter providers

or with no code at all: ``opentelemetry-instrument python app.py`` finds it under the
``opentelemetry_instrumentor`` entry point. Every client of the process is then seen: a span
per chat, responses or embeddings call, a child span per HTTP attempt (whose trace context goes
out in its ``traceparent`` header), and the ``gen_ai.client.*`` histograms plus ours. Message
content only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true; the API key
never (no request header is recorded, and answers are scrubbed of it before anyone reads them).

``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``provider_name`` (the
``gen_ai.provider.name``, ``"openai"`` by default: CometAPI speaks OpenAI's API, and that is
the value dashboards built on openai-python's instrumentation filter on) and
``capture_message_content`` (default: the environment variable).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .._errors import require

# Without the extra: an ImportError naming it, before anything else is tried.
require("opentelemetry.instrumentation.instrumentor", "otel")

from opentelemetry import metrics as _metrics  # noqa: E402
from opentelemetry import trace as _trace  # noqa: E402
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # noqa: E402

from ... import _observe  # noqa: E402
from ..._version import __version__  # noqa: E402
from ._content import capture_enabled  # noqa: E402
from ._instruments import Instruments  # noqa: E402
from ._watch import OtelObserver  # noqa: E402

__all__ = ["CometSyncInstrumentor"]

SCOPE = "comet_sync.contrib.otel"


class CometSyncInstrumentor(BaseInstrumentor):
    """Turns comet_sync's observer on (``instrument()``) and off (``uninstrument()``)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        # Nothing to check: this ships inside comet_sync itself (and a checkout on the path,
        # not installed, has no distribution to check).
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracer = _trace.get_tracer(SCOPE, __version__, kwargs.get("tracer_provider"))
        meter = _metrics.get_meter(SCOPE, __version__, kwargs.get("meter_provider"))
        capture = kwargs.get("capture_message_content")
        _observe.set_observer(
            OtelObserver(
                tracer,
                Instruments(meter),
                provider=str(kwargs.get("provider_name") or "openai"),
                capture=capture_enabled() if capture is None else bool(capture),
            )
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        # Calls already running end with the watch they got; new ones get none.
        _observe.set_observer(None)
