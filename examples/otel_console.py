"""OpenTelemetry traces and metrics of a few calls, printed to the console. Runs against the
embedded fake server unless COMETAPI_KEY is set; needs comet-sync[otel] and the SDK
(pip install -e '.[otel]' opentelemetry-sdk).

python examples/otel_console.py

In an application, configure your exporter (OTLP to a collector, say) and keep the two lines
that matter: CometSyncInstrumentor().instrument(), or no code at all under
opentelemetry-instrument.
"""

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from comet_sync import CometClient
from comet_sync.contrib.otel import CometSyncInstrumentor
from comet_sync.testing import real_or_fake

tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(tracer_provider)
# Exported once, at shutdown below (a service would export every minute or so).
reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=3_600_000)
meter_provider = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(meter_provider)

CometSyncInstrumentor().instrument()  # the global providers set above

tracer = trace.get_tracer("example")
with real_or_fake() as settings, CometClient(**settings) as client:
    with tracer.start_as_current_span("answer a question"):  # your own span: the parent
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What is a rate limit?"}],
            temperature=0.2,
        )
        with client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "And a retry?"}],
            stream=True,
        ) as stream:
            text = "".join(stream.text_deltas())
    print(reply.choices[0].message.content)
    print(text)

meter_provider.shutdown()
tracer_provider.shutdown()
