"""OpenTelemetry traces and metrics (issue 25): the SDK's in-memory exporter and reader, the
fake server on loopback, fake time (so every wait on a span is an exact figure)."""

from __future__ import annotations

import contextlib
import inspect
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("opentelemetry.instrumentation.instrumentor")

from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
except ImportError:  # (its name before SDK 1.39)
    from opentelemetry.sdk._logs.export import (
        InMemoryLogExporter as InMemoryLogRecordExporter,
    )

from comet_sync import APIConnectionError, CometClient, ResponseCache
from comet_sync.contrib.otel import CometSyncInstrumentor
from comet_sync.testing import FakeCometServer

from .conftest import SECRET, user


class Telemetry:
    """What one test's calls exported."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))

    def providers(self) -> dict[str, Any]:
        """What ``instrument()`` is given, to export here."""
        return {
            "tracer_provider": self.tracer_provider,
            "meter_provider": self.meter_provider,
            "logger_provider": self.logger_provider,
        }

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def events(self) -> list[Any]:
        """The log records emitted (the GenAI events), in order: the API's records."""
        return [data.log_record for data in self.log_exporter.get_finished_logs()]

    def calls(self) -> list[ReadableSpan]:
        """The call spans (not the attempts', nor the tests' own), in the order they ended."""
        return [s for s in self.spans() if s.kind == trace.SpanKind.CLIENT and s.name != "POST"]

    def attempts(self, call: ReadableSpan) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans()
            if s.parent is not None and s.parent.span_id == call.context.span_id
        ]

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Each metric's points: (attributes, sum or value)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points = found.setdefault(metric.name, [])
                    for point in metric.data.data_points:
                        value = getattr(point, "sum", None)
                        if value is None:
                            value = getattr(point, "value", None)
                        points.append((dict(point.attributes or {}), value))
        return found


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", raising=False)
    telemetry = Telemetry()
    instrumentor = CometSyncInstrumentor()
    instrumentor.instrument(**telemetry.providers())
    try:
        yield telemetry
    finally:
        instrumentor.uninstrument()


def reinstrument(telemetry: Telemetry, content: str, emit_event: str | None = None) -> None:
    """Instrumented again, with the content mode (and event switch) the environment gives."""
    CometSyncInstrumentor().uninstrument()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", content)
        if emit_event is not None:
            mp.setenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", emit_event)
        CometSyncInstrumentor().instrument(**telemetry.providers())


@pytest.fixture
def capture(otel: Telemetry) -> Iterator[Telemetry]:
    """Instrumented with message content on, as the environment variable asks."""
    reinstrument(otel, "true")
    yield otel


# Events are log records with an event name and a context: opentelemetry-api 1.35 or later.
EVENTS = "event_name" in inspect.signature(_logs.LogRecord.__init__).parameters
needs_events = pytest.mark.skipif(not EVENTS, reason="opentelemetry-api without event names")


def gen_ai(span: ReadableSpan) -> dict[str, Any]:
    """The span's gen_ai.* attributes, sequences as lists."""
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in (span.attributes or {}).items()
        if k.startswith("gen_ai.")
    }


def server_attrs(server: FakeCometServer) -> dict[str, Any]:
    return {"server.address": "127.0.0.1", "server.port": server.port}


# -- chat ------------------------------------------------------------------------------------


def test_a_chat_call_is_one_client_span_with_the_conventions_attributes(
    server, make_client, otel
) -> None:
    client = make_client()
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=user("hello there"),
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        seed=7,
        stop="END",
        presence_penalty=0.1,
        frequency_penalty=0.3,
        n=1,
        response_format={"type": "json_object"},
    )
    (call,) = otel.calls()
    assert call.name == "chat gpt-4o-mini"
    assert call.kind == trace.SpanKind.CLIENT
    assert call.parent is None
    assert gen_ai(call) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.request.presence_penalty": 0.1,
        "gen_ai.request.frequency_penalty": 0.3,
        "gen_ai.output.type": "json",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.id": "chatcmpl-fake-00000001",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 2,
        "gen_ai.usage.output_tokens": 3,
    }
    attrs = call.attributes or {}
    assert {k: attrs[k] for k in ("server.address", "server.port")} == server_attrs(server)
    assert attrs["openai.api.type"] == "chat_completions"
    assert attrs["comet_sync.attempts"] == 1
    assert attrs["comet_sync.request_id"] == "fake-00000001"
    assert "error.type" not in attrs
    assert call.status.status_code == trace.StatusCode.UNSET
    # Message content is off unless asked for.
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs


def test_each_attempt_is_a_child_span_and_its_context_is_sent(server, make_client, otel) -> None:
    make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    (call,) = otel.calls()
    (attempt,) = otel.attempts(call)
    assert attempt.name == "POST" and attempt.kind == trace.SpanKind.CLIENT
    attrs = dict(attempt.attributes or {})
    assert attrs["http.request.method"] == "POST"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.full"] == server.base_url + "/chat/completions"
    assert "http.request.resend_count" not in attrs  # set on resends only
    # The server received the attempt's own trace context.
    (received,) = server.received
    ctx = attempt.context
    assert received.headers["traceparent"] == (
        f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    )


def test_two_retries_show_three_attempt_spans(server, make_client, otel, fake_time) -> None:
    server.fail(503, times=2)
    make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    (call,) = otel.calls()
    attempts = otel.attempts(call)
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 503, 200]
    assert [a.attributes.get("http.request.resend_count") for a in attempts] == [None, 1, 2]
    assert [a.attributes.get("error.type") for a in attempts] == ["503", "503", None]
    assert [a.status.status_code for a in attempts] == [
        trace.StatusCode.ERROR,
        trace.StatusCode.ERROR,
        trace.StatusCode.UNSET,
    ]
    # Each retry, its wait (fake time: half of the 1 s and 2 s windows) and its reason.
    retries = [e for e in call.events if e.name == "comet_sync.retry"]
    assert [dict(e.attributes or {}) for e in retries] == [
        {
            "comet_sync.retry.attempt": 1,
            "comet_sync.retry.reason": "503",
            "comet_sync.retry.wait": 0.5,
            "error.type": "comet_sync.InternalServerError",
        },
        {
            "comet_sync.retry.attempt": 2,
            "comet_sync.retry.reason": "503",
            "comet_sync.retry.wait": 1.0,
            "error.type": "comet_sync.InternalServerError",
        },
    ]
    assert fake_time.sleeps == [0.5, 1.0]
    assert call.attributes["comet_sync.attempts"] == 3
    assert call.attributes["comet_sync.retries"] == 2
    assert call.status.status_code == trace.StatusCode.UNSET  # the call succeeded
    (retried,) = otel.metrics()["comet_sync.client.retries"]
    assert retried == ({"gen_ai.request.model": "gpt-4o-mini", "comet_sync.retry.reason": "503"}, 2)


def test_a_429_with_retry_after_shows_the_wait(server, make_client, otel, fake_time) -> None:
    server.fail(429, headers={"Retry-After": "3"})
    make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    (call,) = otel.calls()
    (retry,) = [e for e in call.events if e.name == "comet_sync.retry"]
    # The server's 3 s, plus a tenth of it times random() = 0.5 in jitter.
    assert retry.attributes["comet_sync.retry.retry_after"] == 3.0
    assert retry.attributes["comet_sync.retry.wait"] == pytest.approx(3.15)
    assert retry.attributes["comet_sync.retry.reason"] == "429"
    assert retry.attributes["error.type"] == "comet_sync.RateLimitError"
    assert fake_time.sleeps == [pytest.approx(3.15)]
    statuses = [a.attributes["http.response.status_code"] for a in otel.attempts(call)]
    assert statuses == [429, 200]
    (throttled,) = otel.metrics()["comet_sync.client.throttled"]
    assert throttled == ({"gen_ai.request.model": "gpt-4o-mini"}, 1)


def test_time_held_by_our_pace_is_on_the_attempt(server, make_client, otel, fake_time) -> None:
    client = make_client(rpm=60)  # one a second: the second call waits its turn
    for text in ("a", "b"):
        client.chat.completions.create(model="gpt-4o-mini", messages=user(text))
    first, second = otel.calls()
    waited = [otel.attempts(c)[0].attributes["comet_sync.queue.wait"] for c in (first, second)]
    assert waited[0] == 0.0
    assert waited[1] == pytest.approx(sum(fake_time.sleeps)) and waited[1] > 0.5
    assert second.attributes["comet_sync.queue.wait"] == waited[1]
    metrics = otel.metrics()
    points = metrics["comet_sync.client.queue.wait"]
    assert points == [({"gen_ai.request.model": "gpt-4o-mini"}, pytest.approx(waited[1]))]
    # The pace in force, read from the client's limiter when metrics are collected.
    assert metrics["comet_sync.client.pace"] == [
        ({"gen_ai.request.model": "gpt-4o-mini", "comet_sync.pace.source": "configured"}, 1.0)
    ]


def test_a_failed_call_has_error_type_on_span_and_duration(server, make_client, otel) -> None:
    server.fail(400, message="bad")
    with pytest.raises(Exception):  # noqa: B017 (the class is comet_sync's BadRequestError)
        make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    (call,) = otel.calls()
    assert call.attributes["error.type"] == "comet_sync.BadRequestError"
    assert call.status.status_code == trace.StatusCode.ERROR
    metrics = otel.metrics()
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert duration[0]["error.type"] == "comet_sync.BadRequestError"
    assert "gen_ai.client.token.usage" not in metrics  # no answer, no tokens


def test_calls_of_one_model_share_nothing_they_should_not(server, make_client, otel) -> None:
    """What calls of one model to one server have in common is built once and shared: each
    call still has only its own parameters, and an error's attribute stays on its own
    measurement."""
    client = make_client(max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=user("a"), temperature=0.5)
    client.chat.completions.create(model="gpt-4o-mini", messages=user("b"), seed=3)
    server.fail(400, message="bad")
    with pytest.raises(Exception):  # noqa: B017 (comet_sync's BadRequestError)
        client.chat.completions.create(model="gpt-4o-mini", messages=user("c"))
    client.chat.completions.create(model="gpt-4o-mini", messages=user("d"))
    # An answer naming no model, like the failure's (no answer): measured apart from it.
    server.respond_next(
        {
            "id": "chatcmpl-anonymous",
            "object": "chat.completion",
            "created": 1,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=user("e"))
    calls = otel.calls()
    first, second, _, last, _ = (gen_ai(c) for c in calls)
    assert first["gen_ai.request.temperature"] == 0.5 and "gen_ai.request.seed" not in first
    assert second["gen_ai.request.seed"] == 3 and "gen_ai.request.temperature" not in second
    assert "gen_ai.request.seed" not in last
    assert "error.type" in calls[2].attributes
    assert "error.type" not in calls[3].attributes
    data = otel.reader.get_metrics_data()
    assert data is not None
    counts = {
        tuple((point.attributes or {}).get(k) for k in ("gen_ai.response.model", "error.type")): (
            point.count
        )
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "gen_ai.client.operation.duration"
        for point in metric.data.data_points
    }
    assert counts == {
        ("gpt-4o-mini", None): 3,
        (None, "comet_sync.BadRequestError"): 1,
        (None, None): 1,
    }


# A chat answer that calls a tool, with usage details (cached and reasoning tokens).
TOOL_ANSWER = {
    "id": "chatcmpl-tools",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 0},
    },
}

# TOOL_ANSWER's message as the conventions capture it (gen_ai.output.messages).
TOOL_ANSWER_SAID = [
    {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}
        ],
        "finish_reason": "tool_calls",
    }
]


def test_tool_calls_with_content_capture(server, make_client, capture) -> None:
    server.respond_next(TOOL_ANSWER)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    make_client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Paris?"},
        ],
        tools=tools,
    )
    (call,) = capture.calls()
    attrs = gen_ai(call)
    assert attrs["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 7
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == TOOL_ANSWER_SAID


# -- message content: on the span, in an event, only when asked -------------------------------

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
# A conversation that went through a tool: every kind of input part there is.
TOOL_TURN = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
]
TOOL_TURN_SENT = [
    {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
    {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_0", "name": "weather", "arguments": {"city": "Paris"}}
        ],
    },
    {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_0", "response": "sunny"}],
    },
]
DETAILS = "gen_ai.client.inference.operation.details"
MESSAGES = ("gen_ai.input.messages", "gen_ai.output.messages")


def _chat_calls(client: CometClient, server: FakeCometServer) -> list[tuple[Any, Any]]:
    """A plain chat call (after a tool), a streamed one, one answered with a tool call, and an
    embeddings call (no chat: no event): each chat call's (input, output) as the conventions
    write them."""
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=TOOL_TURN)
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=user("one two"),
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        streamed = "".join(stream.text_deltas())
    server.respond_next(TOOL_ANSWER)
    client.chat.completions.create(model="gpt-4o-mini", messages=user("weather?"), tools=TOOLS)
    client.embeddings.create(model="text-embedding-3-small", input="a")

    def said(text: str | None) -> list[dict[str, Any]]:
        parts = [{"type": "text", "content": text}]
        return [{"role": "assistant", "parts": parts, "finish_reason": "stop"}]

    return [
        (TOOL_TURN_SENT, said(reply.choices[0].message.content)),
        ([{"role": "user", "parts": [{"type": "text", "content": "one two"}]}], said(streamed)),
        (
            [{"role": "user", "parts": [{"type": "text", "content": "weather?"}]}],
            TOOL_ANSWER_SAID,
        ),
    ]


def plain(value: Any) -> Any:
    """An exported value with the SDK's tuples back as lists, to compare with JSON."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    return value


def span_messages(span: ReadableSpan) -> list[Any]:
    """The span's input and output messages, decoded (None where absent)."""
    attrs = span.attributes or {}
    return [json.loads(attrs[k]) if k in attrs else None for k in MESSAGES]


@pytest.mark.parametrize("mode", [None, "false", "no_content", "spans please"])
def test_no_content_and_no_event_unless_asked(server, make_client, otel, mode) -> None:
    if mode is not None:
        reinstrument(otel, mode)
    _chat_calls(make_client(), server)
    calls = otel.calls()
    assert len(calls) == 4
    assert all(span_messages(call) == [None, None] for call in calls)
    assert otel.events() == []


@needs_events
def test_event_only_gives_each_chat_call_one_event_with_its_messages(
    server, make_client, otel
) -> None:
    reinstrument(otel, "event_only")
    expected = _chat_calls(make_client(), server)
    calls = otel.calls()
    events = otel.events()
    assert [call.name for call in calls][-1] == "embeddings text-embedding-3-small"
    assert len(events) == 3  # the chat calls', in the order they ended
    for call, event, (sent, answered) in zip(calls, events, expected):
        assert event.event_name == DETAILS
        assert event.body is None
        # In the call span's context: the event is found from the span, and the span from it.
        assert (event.trace_id, event.span_id) == (call.context.trace_id, call.context.span_id)
        details = plain(event.attributes)
        assert [details.pop(k) for k in MESSAGES] == [sent, answered]
        # The rest is what the span carries; the messages are not on the span.
        assert details == plain(call.attributes)
        assert span_messages(call) == [None, None]


@needs_events
def test_span_and_event_carry_the_same_messages(server, make_client, otel) -> None:
    reinstrument(otel, "span_and_event")
    expected = _chat_calls(make_client(), server)
    calls, events = otel.calls(), otel.events()
    assert len(events) == 3
    for call, event, (sent, answered) in zip(calls, events, expected):
        assert span_messages(call) == [sent, answered]
        assert [plain(event.attributes[k]) for k in MESSAGES] == [sent, answered]


@needs_events
def test_the_event_switch_overrides_the_mode(server, make_client, otel) -> None:
    # Asked for the events alone: each chat call's, without a message in it or on its span.
    reinstrument(otel, "", emit_event="true")
    _chat_calls(make_client(), server)
    calls, events = otel.calls(), otel.events()
    assert len(events) == 3
    for call, event in zip(calls, events):
        assert not set(MESSAGES) & set(event.attributes)
        assert plain(event.attributes) == plain(call.attributes)
    # Content on spans and events, the events turned off: the spans only.
    otel.exporter.clear()
    otel.log_exporter.clear()
    reinstrument(otel, "span_and_event", emit_event="false")
    _chat_calls(make_client(), server)
    assert otel.events() == []
    assert all(span_messages(call) != [None, None] for call in otel.calls()[:3])
    # The span's mode makes no events either; turned on, they carry no message.
    otel.exporter.clear()
    reinstrument(otel, "span_only")
    _chat_calls(make_client(), server)
    assert otel.events() == []
    assert all(span_messages(call) != [None, None] for call in otel.calls()[:3])
    reinstrument(otel, "span_only", emit_event="true")
    _chat_calls(make_client(), server)
    assert len(otel.events()) == 3
    assert not any(set(MESSAGES) & set(event.attributes) for event in otel.events())


@needs_events
def test_events_go_to_the_global_logger_provider_unless_given_one() -> None:
    """As the reference instrumentation does: instrument() with no providers sends the events
    through whatever logger provider the application set (here in a process of its own: the
    global provider can be set once)."""
    code = textwrap.dedent(
        """
        import os
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "event_only"
        from opentelemetry import _logs
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
        try:
            from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as Exporter
        except ImportError:
            from opentelemetry.sdk._logs.export import InMemoryLogExporter as Exporter
        from comet_sync import CometClient
        from comet_sync.contrib.otel import CometSyncInstrumentor
        from comet_sync.testing import FakeCometServer
        exporter = Exporter()
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        _logs.set_logger_provider(provider)
        CometSyncInstrumentor().instrument()
        with FakeCometServer() as server:
            with CometClient(api_key="k", base_url=server.base_url) as client:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "a"}]
                )
        print([data.log_record.event_name for data in exporter.get_finished_logs()])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == f"[{DETAILS!r}]"


# -- streams ---------------------------------------------------------------------------------


def test_cached_and_reasoning_tokens_are_on_the_call_span(server, make_client, otel) -> None:
    client = make_client()
    server.respond_next(TOOL_ANSWER)  # (usage with prompt and completion token details)
    client.chat.completions.create(model="gpt-4o-mini", messages=user("weather?"))
    plain = {
        "id": "chatcmpl-plain",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "total_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    server.respond_next(plain)  # (zeros: neither, as the conventions advise "non-zero")
    client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
    detailed, bare = (gen_ai(c) for c in otel.calls())
    assert detailed["gen_ai.usage.input_tokens"] == 12
    assert detailed["gen_ai.usage.cache_read.input_tokens"] == 4
    assert detailed["gen_ai.usage.output_tokens"] == 7
    assert detailed["gen_ai.usage.reasoning.output_tokens"] == 3
    assert "gen_ai.usage.cache_read.input_tokens" not in bare
    assert "gen_ai.usage.reasoning.output_tokens" not in bare
    # The Responses API names them input_tokens_details / output_tokens_details.
    server.respond_next(
        {
            "id": "resp-details",
            "object": "response",
            "created_at": 1,
            "model": "gpt-5",
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg-1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "ok", "annotations": []}],
                }
            ],
            "usage": {
                "input_tokens": 20,
                "input_tokens_details": {"cached_tokens": 16},
                "output_tokens": 9,
                "output_tokens_details": {"reasoning_tokens": 8},
                "total_tokens": 29,
            },
        }
    )
    client.responses.create(model="gpt-5", input="think")
    responses = gen_ai(otel.calls()[-1])
    assert responses["gen_ai.usage.cache_read.input_tokens"] == 16
    assert responses["gen_ai.usage.reasoning.output_tokens"] == 8


def test_a_stream_span_ends_when_the_stream_ends(server, make_client, otel, fake_time) -> None:
    stream = make_client().chat.completions.create(
        model="gpt-4o-mini",
        messages=user("one two three"),
        stream=True,
        stream_options={"include_usage": True},
    )
    assert otel.calls() == []  # open: not ended yet
    fake_time.advance(0.25)  # the reader takes its time
    text = "".join(stream.text_deltas())
    assert text == "echo: one two three"
    (call,) = otel.calls()
    assert call.name == "chat gpt-4o-mini"
    assert gen_ai(call) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.stream": True,
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.id": "chatcmpl-fake-00000001",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 4,
        "gen_ai.response.time_to_first_chunk": 0.0,  # (fake time: it came at once)
    }
    (attempt,) = otel.attempts(call)
    assert attempt.end_time <= call.end_time  # the attempt's answer is the whole stream
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration[1] == pytest.approx(0.25)  # to the stream's end, on the client's clock


def test_a_stream_closed_early_ends_its_span_without_error(server, make_client, otel) -> None:
    stream = make_client().chat.completions.create(
        model="gpt-4o-mini", messages=user("one two three"), stream=True
    )
    next(iter(stream))
    stream.close()
    (call,) = otel.calls()
    assert "error.type" not in (call.attributes or {})
    (in_flight,) = otel.metrics()["comet_sync.client.requests.in_flight"]
    assert in_flight[1] == 0


def test_a_cut_stream_ends_its_span_with_the_error(server, make_client, otel) -> None:
    server.fail(200, passthrough=True, stream_cut_after=1)
    stream = make_client().chat.completions.create(
        model="gpt-4o-mini", messages=user("one two three"), stream=True
    )
    with pytest.raises(APIConnectionError):
        for _ in stream:
            pass
    (call,) = otel.calls()
    assert call.attributes["error.type"] == "comet_sync.APIConnectionError"
    assert call.status.status_code == trace.StatusCode.ERROR
    (attempt,) = otel.attempts(call)
    assert attempt.attributes["error.type"] == "comet_sync.APIConnectionError"


def test_a_cut_stream_keeps_what_came_as_its_output(server, make_client, capture) -> None:
    """Content captured: a stream cut after its first chunk records what came, its reason
    "error" (no finish reason came), as the reference instrumentation records it."""
    server.fail(200, passthrough=True, stream_cut_after=1)
    stream = make_client().chat.completions.create(
        model="gpt-4o-mini", messages=user("one two three"), stream=True
    )
    came = []
    with pytest.raises(APIConnectionError):
        for chunk in stream:
            came.append(chunk.choices[0].delta.content or "")
    (call,) = capture.calls()
    assert call.attributes["error.type"] == "comet_sync.APIConnectionError"
    _, output = span_messages(call)
    assert "".join(came)  # (something came before the cut)
    assert output == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "".join(came)}],
            "finish_reason": "error",
        }
    ]


# -- embeddings and responses ----------------------------------------------------------------


def test_embeddings(server, make_client, otel) -> None:
    make_client().embeddings.create(
        model="text-embedding-3-small", input=["a b", "c"], dimensions=8, encoding_format="float"
    )
    (call,) = otel.calls()
    assert call.name == "embeddings text-embedding-3-small"
    assert gen_ai(call) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.request.encoding_formats": ["float"],
        "gen_ai.embeddings.dimension.count": 8,
        "gen_ai.response.model": "text-embedding-3-small",
        "gen_ai.usage.input_tokens": 3,
    }
    tokens = otel.metrics()["gen_ai.client.token.usage"]
    assert [(p[0]["gen_ai.token.type"], p[1]) for p in tokens] == [("input", 3)]


@pytest.mark.parametrize("stream", [False, True])
def test_responses(server, make_client, capture, stream) -> None:
    client = make_client()
    if stream:
        with client.responses.create(
            model="gpt-5", input="hi you", max_output_tokens=64, stream=True
        ) as events:
            events.get_final_response()
    else:
        client.responses.create(model="gpt-5", input="hi you", max_output_tokens=64)
    (call,) = capture.calls()
    assert call.name == "chat gpt-5"
    assert call.attributes["openai.api.type"] == "responses"
    attrs = gen_ai(call)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi you"}]}
    ]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "echo: hi you"}],
            "finish_reason": "stop",
        }
    ]
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-5",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.response.model": "gpt-5",
        "gen_ai.response.id": "resp-fake-00000001",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 2,
        "gen_ai.usage.output_tokens": 3,
    }
    if stream:
        expected["gen_ai.request.stream"] = True
        expected["gen_ai.response.time_to_first_chunk"] = 0.0
    assert attrs == expected


# -- our own facts ---------------------------------------------------------------------------


def test_a_fallback_is_on_the_span_of_the_call_it_made(server, make_client, otel) -> None:
    server.fail(503, code="model_not_found", message="model m1 not found")
    make_client().chat.completions.create(model="m1", messages=user("a"), fallbacks=["m2"])
    failed, fell_back = otel.calls()
    assert failed.name == "chat m1" and failed.status.status_code == trace.StatusCode.ERROR
    assert fell_back.name == "chat m2"
    assert fell_back.attributes["comet_sync.fallback.from"] == "m1"
    assert fell_back.attributes["comet_sync.fallback.reason"] == "model unavailable (503)"


def test_a_cache_hit_is_a_span_with_nothing_sent(server, make_client, otel) -> None:
    client = make_client(cache=ResponseCache())
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    sent, hit = otel.calls()
    assert len(otel.attempts(sent)) == 1 and otel.attempts(hit) == []
    assert "comet_sync.cache.hit" not in (sent.attributes or {})
    assert hit.attributes["comet_sync.cache.hit"] is True
    assert hit.attributes["comet_sync.attempts"] == 0
    assert gen_ai(hit)["gen_ai.response.id"] == gen_ai(sent)["gen_ai.response.id"]


def test_in_flight_counts_calls_until_they_end(server, make_client, otel) -> None:
    client = make_client()
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=user("a"), stream=True)
    (in_flight,) = otel.metrics()["comet_sync.client.requests.in_flight"]
    assert in_flight[1] == 1
    stream.close()
    (in_flight,) = otel.metrics()["comet_sync.client.requests.in_flight"]
    assert in_flight[1] == 0


# -- parents ---------------------------------------------------------------------------------


def test_a_flask_request_span_is_the_parent_of_the_call_span(server, make_client, otel) -> None:
    flask = pytest.importorskip("flask")
    flask_otel = pytest.importorskip("opentelemetry.instrumentation.flask")
    client = make_client()
    app = flask.Flask(__name__)

    @app.post("/ask")
    def ask() -> str:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("a"))
        return reply.choices[0].message.content or ""

    flask_otel.FlaskInstrumentor().instrument_app(app, tracer_provider=otel.tracer_provider)
    try:
        assert app.test_client().post("/ask").status_code == 200
    finally:
        flask_otel.FlaskInstrumentor().uninstrument_app(app)
    (request,) = [s for s in otel.spans() if s.kind == trace.SpanKind.SERVER]
    (call,) = otel.calls()
    assert call.parent is not None and call.parent.span_id == request.context.span_id
    assert call.context.trace_id == request.context.trace_id
    (received,) = server.received
    assert f"{request.context.trace_id:032x}" in received.headers["traceparent"]


def test_a_django_request_span_is_the_parent_of_the_call_span(otel) -> None:
    """A Django view calling through the Django integration, served by a real threaded WSGI
    server (the view runs on a server thread, not the test's), under OpenTelemetry's WSGI
    middleware: the request span it opens is the parent of the call span, and the attempt's
    traceparent carries that trace to the server."""
    pytest.importorskip("django")
    wsgi_otel = pytest.importorskip("opentelemetry.instrumentation.wsgi")
    requests = pytest.importorskip("requests")
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.djangoproj.settings")
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    from comet_sync.contrib.django import reset_client

    from .test_web import serve

    django.setup()
    app = wsgi_otel.OpenTelemetryMiddleware(WSGIHandler(), tracer_provider=otel.tracer_provider)
    with FakeCometServer() as fake:
        previous = settings.COMETAPI_BASE_URL
        settings.COMETAPI_BASE_URL = fake.base_url
        reset_client()
        try:
            with serve(app) as url:
                r = requests.get(url + "/ask?q=traced", timeout=30)
        finally:
            reset_client()
            settings.COMETAPI_BASE_URL = previous
        assert r.status_code == 200 and r.json() == {"answer": "echo: traced"}
        (received,) = fake.received
    (request,) = [s for s in otel.spans() if s.kind == trace.SpanKind.SERVER]
    assert request.name.startswith("GET")  # (the WSGI middleware's span, whichever conventions)
    (call,) = otel.calls()
    assert call.name == "chat gpt-4o-mini"
    assert call.parent is not None and call.parent.span_id == request.context.span_id
    assert call.context.trace_id == request.context.trace_id
    (attempt,) = otel.attempts(call)
    assert received.headers["traceparent"].split("-")[1:3] == [
        f"{request.context.trace_id:032x}",
        f"{attempt.context.span_id:016x}",
    ]


def test_map_jobs_are_children_of_the_callers_span(server, make_client, otel) -> None:
    client = make_client()
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("batch run") as root:
        jobs = ({"model": "gpt-4o-mini", "messages": user(str(i))} for i in range(5))
        assert len(list(client.chat.completions.map(jobs))) == 5
    calls = otel.calls()
    assert len(calls) == 5
    assert {c.parent.span_id for c in calls if c.parent} == {root.get_span_context().span_id}


def test_a_batch_run_under_one_span_has_every_job_under_it(server, make_client, otel) -> None:
    from comet_sync import run_batch

    client = make_client()
    tracer = otel.tracer_provider.get_tracer("test")
    jobs = [{"model": "gpt-4o-mini", "messages": user(str(i))} for i in range(6)]
    with tracer.start_as_current_span("nightly batch") as root:
        results = list(run_batch(client, jobs, ordered=False, window=2))
    assert all(r.ok for r in results)
    calls = otel.calls()
    assert len(calls) == 6
    assert {c.parent.span_id for c in calls if c.parent} == {root.get_span_context().span_id}


def test_the_cli_batch_is_one_trace_with_a_root_span(otel, tmp_path, capsys) -> None:
    from comet_sync._cli import main

    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"messages": user(f"job {i}")}) + "\n" for i in range(5)))
    args = ["batch", str(source), "-o", str(output), "--model", "gpt-4o-mini"]
    code = main([*args, "--fake", "--no-progress"])
    assert code == 0
    (root,) = [s for s in otel.spans() if s.name == "comet_sync batch"]
    assert root.parent is None and root.attributes["comet_sync.batch"] == str(source)
    calls = otel.calls()
    assert len(calls) == 5
    assert {c.parent.span_id for c in calls if c.parent} == {root.context.span_id}
    assert all(c.end_time <= root.end_time for c in calls)


# -- the key ---------------------------------------------------------------------------------


def _exported_text(telemetry: Telemetry) -> str:
    spans = [span.to_json() for span in telemetry.spans()]
    logs = [data.to_json() for data in telemetry.log_exporter.get_finished_logs()]
    data = telemetry.reader.get_metrics_data()
    return "\n".join([*spans, *logs, data.to_json() if data else ""])


def test_the_key_is_in_no_span_event_attribute_or_metric(capture) -> None:
    """A server that echoes the key everywhere it can; content capture on, on the spans and in
    the GenAI events, so that answers land there too: the key must be nowhere in what is
    exported."""
    reinstrument(capture, "span_and_event")
    from .hostile import hostile
    from .test_key_echo import FORMS, _echo, _messages
    from .test_key_echo import SECRET as ECHO_SECRET

    with hostile(_echo) as server:
        client = CometClient(
            api_key=ECHO_SECRET,
            base_url=server.base_url,
            max_retries=1,
            backoff_base=0.01,
            max_wait=0.05,
        )
        try:
            client.chat.completions.create(model="m", messages=_messages("ok"))
            for status in ("401", "429", "503"):
                with pytest.raises(Exception):  # noqa: B017 (each status its own class)
                    client.chat.completions.create(model="m", messages=_messages(status))
            for kind in ("stream", "stream-error"):
                stream = client.chat.completions.create(
                    model="m", messages=_messages(kind), stream=True
                )
                try:
                    for _ in stream:
                        pass
                except Exception:
                    assert kind == "stream-error"
        finally:
            client.close()
    text = _exported_text(capture)
    assert len(capture.calls()) == 6
    if EVENTS:  # (the search looks at them too)
        assert len(capture.events()) == 6
    assert "***" in text  # the scrubbed echoes are there: the search looks at the answers
    assert [form for form in FORMS if form in text] == []


def test_a_prompt_that_quotes_the_key_is_captured_without_it(server, make_client, capture) -> None:
    """An attack run: with content capture on, a prompt quoting the key put it in
    gen_ai.input.messages unscrubbed (answers were scrubbed). On the span and in the event."""
    reinstrument(capture, "span_and_event")
    make_client().chat.completions.create(model="m", messages=user(f"my key is {SECRET}"))
    text = _exported_text(capture)
    assert text.count("my key is ***") >= 2 and SECRET not in text


def test_a_tool_call_that_spells_the_key_in_escapes_is_captured_without_it(
    server, make_client, capture
) -> None:
    """A tool call's arguments are JSON text, decoded for the content: an escape in them may
    spell the key that the client's scrub of the answer could not see."""
    reinstrument(capture, "span_and_event")
    spelled = "".join(f"\\u{ord(c):04x}" for c in SECRET)
    answer = json.loads(json.dumps(TOOL_ANSWER))
    answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = (
        '{"city": "' + spelled + '"}'
    )
    server.respond_next(answer)
    make_client().chat.completions.create(model="m", messages=user("weather?"), tools=TOOLS)
    (call,) = capture.calls()
    _, output = span_messages(call)
    assert output[0]["parts"][0]["arguments"] == {"city": "***"}
    assert SECRET not in _exported_text(capture)


def test_the_fake_servers_key_is_nowhere_either(server, make_client, capture) -> None:
    server.fail(429, headers={"Retry-After": "1"})
    make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    text = _exported_text(capture)
    assert "gpt-4o-mini" in text and SECRET not in text and SECRET[10:40] not in text


# -- off -------------------------------------------------------------------------------------


def test_uninstrumented_calls_make_no_spans_and_send_no_traceparent(
    server, make_client, otel
) -> None:
    CometSyncInstrumentor().uninstrument()
    make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    assert otel.spans() == []
    (received,) = server.received
    assert "traceparent" not in received.headers
    CometSyncInstrumentor().instrument(**otel.providers())
    make_client().chat.completions.create(model="gpt-4o-mini", messages=user("b"))
    assert len(otel.calls()) == 1


def test_comet_sync_imports_nothing_of_opentelemetry_unless_asked() -> None:
    code = textwrap.dedent(
        """
        import sys
        import comet_sync
        from comet_sync.testing import FakeCometServer
        with FakeCometServer() as server:
            with comet_sync.CometClient(api_key="k", base_url=server.base_url) as client:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "a"}]
                )
                with client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "a"}], stream=True
                ) as stream:
                    list(stream)
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_the_entry_point_names_the_instrumentor() -> None:
    import configparser
    from pathlib import Path

    config = configparser.ConfigParser()
    config.read(Path(__file__).parent.parent / "setup.cfg")
    entry = config["options.entry_points"]["opentelemetry_instrumentor"].strip()
    name, target = (part.strip() for part in entry.split("="))
    module, attr = target.split(":")
    assert name == "comet_sync"
    assert getattr(__import__(module, fromlist=[attr]), attr) is CometSyncInstrumentor


# -- against the anchor ----------------------------------------------------------------------


# The same user calls, each made through openai-python and through comet_sync: (name, the
# resource's path, its keyword arguments, a canned answer or None for the fake server's own).
ANCHOR_CALLS: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
    (
        "chat",
        "chat.completions",
        {
            "model": "gpt-4o-mini",
            "messages": user("hello there"),
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 50,
            "seed": 7,
            "stop": ["END", "STOP"],
            "presence_penalty": 0.1,
            "frequency_penalty": 0.3,
            "n": 2,
            "response_format": {"type": "json_object"},
        },
        None,
    ),
    (
        "stream",
        "chat.completions",
        {
            "model": "gpt-4o-mini",
            "messages": user("one two three"),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        None,
    ),
    (
        "tools",
        "chat.completions",
        {
            "model": "gpt-4o-mini",
            "messages": user("weather in Paris?"),
            "tools": TOOLS,
        },
        TOOL_ANSWER,
    ),
    (
        "tool_turn",
        "chat.completions",
        {"model": "gpt-4o-mini", "messages": TOOL_TURN, "tools": TOOLS},
        None,
    ),
    (
        "embeddings",
        "embeddings",
        {
            "model": "text-embedding-3-small",
            "input": ["a b", "c"],
            "dimensions": 8,
            "encoding_format": "float",
        },
        None,
    ),
]

# gen_ai.* attributes the two may differ on, per call, and why. Everything else must match,
# name and value.
ALLOWED = {
    "stream": {
        # The conventions' attributes for a streamed call. The anchor's 2.4b0 on
        # opentelemetry-util-genai 1.1b0 (the newest pair that imports together) sets
        # neither; util-genai 1.3b0's InferenceInvocation sets both.
        "gen_ai.request.stream": "the anchor's util-genai predates it",
        "gen_ai.response.time_to_first_chunk": "the anchor's util-genai predates it",
        # The last chunk with a choice says "stop"; the anchor's stream wrapper does not
        # carry finish reasons to the span in this version.
        "gen_ai.response.finish_reasons": "the anchor drops them on streams",
    },
    "tools": {
        # Both named by the conventions; the anchor's 2.4b0 reads the usage details of the
        # Responses API only, and sets no reasoning count at all.
        "gen_ai.usage.cache_read.input_tokens": "the anchor reads no chat usage details",
        "gen_ai.usage.reasoning.output_tokens": "the anchor sets no reasoning count",
    },
}


def _make_calls(target: Any, server: FakeCometServer, consume: bool) -> None:
    for _, path, kwargs, canned in ANCHOR_CALLS:
        if canned is not None:
            server.respond_next(canned)
        resource = target
        for part in path.split("."):
            resource = getattr(resource, part)
        answer = resource.create(**kwargs)
        if kwargs.get("stream"):
            for _ in answer:
                pass
            if consume:
                answer.close()


def _both(make_client: Any) -> tuple[Telemetry, Telemetry]:
    """The calls of ANCHOR_CALLS made through openai-python instrumented by the anchor, then
    through comet_sync (each against a fresh fake server, so the answers' ids match): what
    each exported."""
    openai = pytest.importorskip("openai")
    anchor = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    theirs, ours = Telemetry(), Telemetry()
    instrumentor = anchor.OpenAIInstrumentor()
    instrumentor.instrument(**theirs.providers())
    try:
        with FakeCometServer() as server:
            client = openai.OpenAI(api_key=SECRET, base_url=server.base_url, max_retries=0)
            _make_calls(client, server, consume=True)
            client.close()
    finally:
        instrumentor.uninstrument()
    CometSyncInstrumentor().instrument(**ours.providers())
    try:
        with contextlib.ExitStack() as stack:  # (no parenthesized with on Python 3.9)
            server = stack.enter_context(FakeCometServer())
            ours_client = CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0)
            stack.enter_context(ours_client)
            _make_calls(ours_client, server, consume=False)
    finally:
        CometSyncInstrumentor().uninstrument()
    return theirs, ours


def _differences(theirs: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """Per call of ANCHOR_CALLS (the first ones, as many as given), the attributes whose
    values differ: (theirs, ours)."""
    assert len(theirs) == len(ours)
    differences: dict[str, dict[str, tuple[Any, Any]]] = {}
    for (name, *_), a, b in zip(ANCHOR_CALLS, theirs, ours):
        found = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        if found:
            differences[name] = found
    return differences


def test_the_call_spans_match_the_reference_openai_instrumentation(
    make_client, monkeypatch
) -> None:
    """openai-python instrumented by opentelemetry-instrumentation-openai-v2, and comet_sync,
    make the same calls: the call spans carry the same gen_ai.* names and values, but for
    what ALLOWED lists."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", raising=False)
    theirs, ours = _both(make_client)
    their_spans, our_spans = theirs.spans(), ours.calls()
    assert [s.name for s in their_spans] == [s.name for s in our_spans]
    differences = _differences(
        [gen_ai(span) for span in their_spans], [gen_ai(span) for span in our_spans]
    )
    assert {name: sorted(found) for name, found in differences.items()} == {
        name: sorted(allowed) for name, allowed in ALLOWED.items()
    }
    # Where they differ, it is the anchor that lacks the attribute, never a value at odds.
    assert all(theirs_ is None for found in differences.values() for theirs_, _ in found.values())
    # The conventions' two histograms: the same gen_ai.* attribute sets (as sets: the anchor
    # splits points further on attributes outside gen_ai.*, openai.response.system_fingerprint).
    # (The anchor's embeddings metrics still say gen_ai.system, the name gen_ai.provider.name
    # replaced, and carry gen_ai.embeddings.dimension.count: allowed, and checked as such.)
    for metric in ("gen_ai.client.operation.duration", "gen_ai.client.token.usage"):
        their_sets = sorted(set(_metric_keys(theirs, metric)))
        our_sets = sorted(set(_metric_keys(ours, metric)))
        assert their_sets == our_sets, metric


# Where the content differs from the anchor's, outside these calls (none differs in them):
# - "true" puts content on the span here (its meaning before the modes); the anchor's current
#   version reads it as no content, with a warning.
# - The variables are read when instrument() runs here; the anchor reads the mode again on
#   each call (so a change after instrument() moves its content, not ours).
# - A message whose content is a list of parts: each text part is kept here; the anchor keeps a
#   list of plain strings as one text (its str()), and drops parts written {"type": "text"}.
# - The Responses API: instrumented here (the same event and messages); the anchor does not
#   instrument it.
@needs_events
def test_the_content_matches_the_reference_openai_instrumentation(make_client, monkeypatch) -> None:
    """The same calls with content on the spans and in events (``span_and_event``, a mode both
    read alike; the reference reads the variable on each call, so it stays set): the same
    messages on each call span, and one event per chat call, the same on both sides: its
    name, its gen_ai.* attributes (but for the span's ALLOWED differences, which the event
    carries too) and its messages, structured."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_and_event")
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", raising=False)
    theirs, ours = _both(make_client)
    their_spans, our_spans = theirs.spans(), ours.calls()
    assert [span_messages(span) for span in their_spans] == [
        span_messages(span) for span in our_spans
    ]
    chats = [name for name, path, *_ in ANCHOR_CALLS if path == "chat.completions"]
    assert all(span_messages(span) != [None, None] for span in our_spans[: len(chats)])
    their_events, our_events = theirs.events(), ours.events()
    assert [e.event_name for e in their_events] == [e.event_name for e in our_events]
    assert [e.event_name for e in our_events] == [DETAILS] * len(chats)

    def details(event: Any) -> dict[str, Any]:
        return {k: plain(v) for k, v in event.attributes.items() if k.startswith("gen_ai.")}

    differences = _differences([details(e) for e in their_events], [details(e) for e in our_events])
    assert {name: sorted(found) for name, found in differences.items()} == {
        name: sorted(allowed) for name, allowed in ALLOWED.items() if name in chats
    }
    assert all(theirs_ is None for found in differences.values() for theirs_, _ in found.values())
    assert all(set(MESSAGES) <= set(details(e)) for e in our_events)


def _metric_keys(telemetry: Telemetry, name: str) -> list[tuple[str, ...]]:
    found = []
    for attrs, _ in telemetry.metrics()[name]:
        keys = {k for k in attrs if k.startswith("gen_ai.")}
        if "gen_ai.system" in keys:  # the anchor's embeddings (see above)
            keys = (keys - {"gen_ai.system", "gen_ai.embeddings.dimension.count"}) | {
                "gen_ai.provider.name"
            }
        found.append(tuple(sorted(keys)))
    return found


def test_a_call_sampled_out_is_still_measured_and_still_propagates(server, make_client) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    telemetry = Telemetry()
    telemetry.tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(telemetry.exporter))
    CometSyncInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    finally:
        CometSyncInstrumentor().uninstrument()
    assert telemetry.spans() == []
    (received,) = server.received
    flags = int(received.headers["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 1 == 0  # the trace goes on, marked not sampled
    (duration,) = telemetry.metrics()["gen_ai.client.operation.duration"]
    assert duration[0]["gen_ai.response.model"] == "gpt-4o-mini"


@needs_events
def test_a_call_sampled_out_still_has_its_event(server, make_client, monkeypatch) -> None:
    """The event has its own pipeline, as the reference has it: a call whose span is sampled
    out still ends in its event, whole (the answer's attributes and the messages)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "event_only")
    telemetry = Telemetry()
    telemetry.tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    CometSyncInstrumentor().instrument(**telemetry.providers())
    try:
        make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    finally:
        CometSyncInstrumentor().uninstrument()
    (event,) = telemetry.events()
    assert event.event_name == DETAILS
    assert event.trace_id != 0 and int(event.trace_flags) & 1 == 0  # the trace, not sampled
    details = plain(event.attributes)
    assert details["gen_ai.response.id"] == "chatcmpl-fake-00000001"
    assert details["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "echo: a"}]


def test_a_propagator_that_raises_costs_the_header_not_the_call(server, make_client, otel) -> None:
    from opentelemetry import propagate
    from opentelemetry.propagators.textmap import TextMapPropagator

    class Broken(TextMapPropagator):
        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            return context

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            raise RuntimeError("broken propagator")

        @property
        def fields(self) -> set[str]:
            return set()

    before = propagate.get_global_textmap()
    propagate.set_global_textmap(Broken())
    try:
        reply = make_client().chat.completions.create(model="gpt-4o-mini", messages=user("a"))
    finally:
        propagate.set_global_textmap(before)
    assert reply.choices[0].message.content == "echo: a"
    (received,) = server.received
    assert "traceparent" not in received.headers
    assert len(otel.calls()) == 1
