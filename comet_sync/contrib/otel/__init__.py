"""OpenTelemetry traces and metrics in the GenAI semantic conventions
(``pip install 'comet-sync[otel]'``).

>>> from comet_sync.contrib.otel import CometSyncInstrumentor
>>> CometSyncInstrumentor().instrument()       # the global tracer and meter providers

or with no code at all: ``opentelemetry-instrument python app.py`` finds it under the
``opentelemetry_instrumentor`` entry point. Every client of the process is then seen: a span
per chat, responses or embeddings call, a child span per HTTP attempt (whose trace context goes
out in its ``traceparent`` header), and the ``gen_ai.client.*`` histograms plus ours. Message
content only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for it (on the
span, in a ``gen_ai.client.inference.operation.details`` event per chat call, or both: see
``_content``); the API key never (no request header is recorded, and what is captured is
scrubbed of it).

``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``logger_provider`` (for the
events; the global one by default), ``provider_name`` (the ``gen_ai.provider.name``,
``"openai"`` by default: CometAPI speaks OpenAI's API, and that is the value dashboards built on
openai-python's instrumentation filter on) and ``capture_message_content`` (a mode name, True
for the span, False for none; default: the environment variables, read when ``instrument()``
runs).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection
from typing import Any

from .._errors import require

# Without the extra: an ImportError naming it, before anything else is tried.
require("opentelemetry.instrumentation.instrumentor", "otel")

from opentelemetry import _logs  # noqa: E402
from opentelemetry import metrics as _metrics  # noqa: E402
from opentelemetry import trace as _trace  # noqa: E402
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # noqa: E402

from ... import _observe  # noqa: E402
from ..._version import __version__  # noqa: E402
from ._content import Capture, capture_from_env, capture_of  # noqa: E402
from ._instruments import Instruments  # noqa: E402
from ._watch import OtelObserver  # noqa: E402

__all__ = ["CometSyncInstrumentor"]

SCOPE = "comet_sync.contrib.otel"

_logger = logging.getLogger("comet_sync")


class CometSyncInstrumentor(BaseInstrumentor):
    """Turns comet_sync's observer on (``instrument()``) and off (``uninstrument()``)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        # Nothing to check: this ships inside comet_sync itself (and a checkout on the path,
        # not installed, has no distribution to check).
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracer = _trace.get_tracer(SCOPE, __version__, kwargs.get("tracer_provider"))
        meter = _metrics.get_meter(SCOPE, __version__, kwargs.get("meter_provider"))
        asked = kwargs.get("capture_message_content")
        capture = capture_from_env() if asked is None else capture_of(asked)
        events = _event_logger(capture, kwargs.get("logger_provider"))
        if events is None:
            capture = capture._replace(event=False, event_content=False)
        _observe.set_observer(
            OtelObserver(
                tracer,
                Instruments(meter),
                provider=str(kwargs.get("provider_name") or "openai"),
                capture=capture,
                events=events,
            )
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        # Calls already running end with the watch they got; new ones get none.
        _observe.set_observer(None)


def _event_logger(capture: Capture, provider: Any) -> Any:
    """The logger the events go through (the global logger provider's unless given one), or
    None when no event is asked or the installed API cannot name one."""
    if not capture.event:
        return None
    names = inspect.signature(_logs.LogRecord.__init__).parameters
    if "event_name" not in names or "context" not in names:
        _logger.warning(
            "GenAI events need opentelemetry-api 1.35 or later (a log record with an event "
            "name); none will be emitted"
        )
        return None
    return _logs.get_logger(SCOPE, __version__, provider)
