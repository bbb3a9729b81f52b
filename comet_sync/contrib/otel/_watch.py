"""Each call as spans and measurements: the observer the instrumentor installs, and the watch
it gives each call (see ``comet_sync._observe`` for when the core calls what).

Spans: one per logical call (``chat {model}``, kind CLIENT), started when the call begins in
the caller's context (a Flask or Django request's span, a batch's), and ended when the call
ends: a stream's when the stream ends, is closed or cut. Under it, one span per HTTP attempt
(``POST``), whose context goes out in that attempt's ``traceparent``. Retries are events on
the call's span, with their wait and reason. When asked (see ``_content``), a chat call's end is
also a ``gen_ai.client.inference.operation.details`` event: a log record in the call span's
context carrying the span's attributes, and the messages as structured values.

No locks: a watch is touched by one thread at a time (the call's; a stream's end runs once,
after the attempts, on whichever thread ends it), and OpenTelemetry's spans and instruments
guard themselves. Nothing here blocks or does I/O: exporting is the SDK's processors' work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

from ..._exceptions import scrub_json
from .._errors import require
from ._attributes import (
    Attributes,
    Operation,
    call_attributes,
    operation_of,
    request_parameters,
    response_attributes,
    server_of,
    usage_attributes,
    usage_detail_attributes,
)
from ._content import Capture, dumps, input_messages, output_messages
from ._instruments import Instruments

if TYPE_CHECKING:
    from ..._rate.protocol import LimiterProtocol
    from ..._records import RequestRecord

_trace = require("opentelemetry.trace", "otel")
_propagate = require("opentelemetry.propagate", "otel")
_logs = require("opentelemetry._logs", "otel")

__all__ = ["CallSpan", "OtelObserver", "Shape"]

logger = logging.getLogger("comet_sync")

_CLIENT = _trace.SpanKind.CLIENT
_ERROR = _trace.StatusCode.ERROR

INPUT = "gen_ai.input.messages"
OUTPUT = "gen_ai.output.messages"
# The conventions' event for an inference call's details (the messages among them).
DETAILS = "gen_ai.client.inference.operation.details"


# Time between asking our limiter and being let out that counts as held: below it, the wait
# was the limiter's own bookkeeping (microseconds), and a histogram record per call costs more
# than it tells.
HELD = 0.001


# Shapes an observer keeps (one per route, model and base URL a process calls: a handful), and
# response models a shape keeps the measurement attributes of. Past these, built per call.
SHAPES = 256
ANSWERING_MODELS = 16


class Shape:
    """What every call of one operation on one model to one server has in common: its span's
    name and first attributes, its attempts', its measurements'. Built on the first such call
    and shared by the next (read only: OpenTelemetry copies the attributes it is given)."""

    __slots__ = ("_measures", "attempt", "base", "flight", "model", "name", "op", "start", "url")

    def __init__(self, op: Operation, model: str | None, base_url: str, provider: str) -> None:
        self.op = op
        self.url = base_url + op.route
        address, port = server_of(base_url)
        server: Attributes = {}
        if address:
            server["server.address"] = address
        if port is not None:
            server["server.port"] = port
        self.start = call_attributes(op, model)  # the call span's, before its parameters
        self.start["gen_ai.provider.name"] = provider
        self.start.update(server)
        self.model: Attributes = {"gen_ai.request.model": model} if model else {}
        # What every measurement of these calls carries (the conventions' attribute set).
        self.base: Attributes = {
            "gen_ai.operation.name": op.name,
            "gen_ai.provider.name": provider,
            **self.model,
            **server,
        }
        self.flight = tuple(self.base.items())  # (its key among the calls in flight)
        self.name = f"{op.name} {model}" if model else op.name
        self.attempt: Attributes = {"http.request.method": "POST", "url.full": self.url, **server}
        self._measures: dict[str | None, tuple[Attributes, Attributes, Attributes]] = {}

    def measures(self, answered_by: str | None) -> tuple[Attributes, Attributes, Attributes]:
        """The attributes of a call's duration, input tokens and output tokens, when the model
        ``answered_by`` answered it."""
        found = self._measures.get(answered_by)
        if found is None:
            metric = dict(self.base)
            if answered_by:
                metric["gen_ai.response.model"] = answered_by
            found = (
                metric,
                {**metric, "gen_ai.token.type": "input"},
                {**metric, "gen_ai.token.type": "output"},
            )
            if len(self._measures) < ANSWERING_MODELS:
                self._measures[answered_by] = found
        return found


class OtelObserver:
    """Gives each GenAI call (chat, responses, embeddings) a :class:`CallSpan`; the model list
    and other routes are left alone."""

    def __init__(
        self,
        tracer: Any,
        instruments: Instruments,
        *,
        provider: str,
        capture: Capture,
        events: Any = None,
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.provider = provider  # gen_ai.provider.name
        self.capture = capture  # message content, and whether chat calls end in an event
        self.events = events  # the logger the events go through (None: no events)
        # Read and added to by every calling thread without a lock: a dict's get and set are
        # atomic, and two threads building the same shape at once build equal ones.
        self._shapes: dict[tuple[str, str | None, str], Shape] = {}

    def batch_run(self, source: str) -> AbstractContextManager[object]:
        """The run's root span, current while the run's results are read."""
        span = self.tracer.start_span("comet_sync batch", attributes={"comet_sync.batch": source})
        return cast("AbstractContextManager[object]", _trace.use_span(span, end_on_exit=True))

    def call_started(
        self,
        route: str,
        payload: Mapping[str, Any],
        base_url: str,
        stream: bool,
        limiter: LimiterProtocol,
        secret: str,
    ) -> CallSpan | None:
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            model = None
        key = (route, model, base_url)
        shape = self._shapes.get(key)
        if shape is None:
            op = operation_of(route)
            if op is None:
                return None
            shape = Shape(op, model, base_url, self.provider)
            if len(self._shapes) < SHAPES:
                self._shapes[key] = shape
        self.instruments.paces.watch(limiter)
        return CallSpan(self, shape, payload, stream, secret)


def error_type(error: BaseException) -> str:
    """``error.type`` of an exception: its class, fully qualified, under the public module
    name for our own (``comet_sync.RateLimitError``, not ``comet_sync._exceptions...``)."""
    cls = type(error)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module.startswith("comet_sync."):
        module = "comet_sync"
    return f"{module}.{cls.__qualname__}"


def _retry_reason(error: BaseException) -> str:
    status = getattr(error, "status_code", None)
    return str(status) if isinstance(status, int) else type(error).__name__


class CallSpan:
    """One call's span, its attempts' spans, and its measurements."""

    __slots__ = (
        "_attempt",
        "_attempt_end",
        "_attempt_status",
        "_attempts",
        "_done",
        "_input",
        "_observer",
        "_opening",
        "_queued",
        "_retries",
        "_secret",
        "_shape",
        "_span",
        "_started",
    )

    def __init__(
        self,
        observer: OtelObserver,
        shape: Shape,
        payload: Mapping[str, Any],
        stream: bool,
        secret: str,
    ) -> None:
        self._observer = observer
        self._shape = shape
        attrs = dict(shape.start)
        request_parameters(attrs, shape.op, payload, stream)
        capture = observer.capture
        self._input: list[Any] | None = None  # the messages sent, when content is captured
        # Only while content is captured, to scrub what is: a prompt may quote the key (a user
        # pasting a config into a chat), and a tool call's arguments are decoded here. Never
        # recorded, and gone with the call.
        self._secret = secret if capture.content else ""
        if capture.content:
            messages = input_messages(payload)
            if messages is not None:
                self._input = scrub_json(messages, secret)
                if capture.span:
                    attrs[INPUT] = dumps(self._input)
        # The span's first attributes, kept for the event a chat call ends with (the SDK
        # copied them; this dict is not changed after).
        self._opening: Attributes | None = None
        if capture.event and shape.op.name == "chat":
            self._opening = attrs
        self._span = observer.tracer.start_span(shape.name, kind=_CLIENT, attributes=attrs)
        self._started = time.monotonic()  # for a call that ends without a record
        self._attempt: Any = None  # the attempt's span, until it is ended
        self._attempt_status: int | None = None
        self._attempt_end: int | None = None  # when it came off the wire (ns, span clock)
        self._attempts = 0
        self._queued = 0.0
        self._retries = 0
        self._done = False
        observer.instruments.in_flight.add(shape.flight, 1)

    # -- attempts ----------------------------------------------------------------------------

    def sending(self, headers: dict[str, str], resend_count: int, queued: float) -> None:
        if self._attempt is not None:
            self._end_attempt(None)
        attrs = dict(self._shape.attempt)
        if resend_count:  # the conventions set it on resends only
            attrs["http.request.resend_count"] = resend_count
        attrs["comet_sync.queue.wait"] = queued
        observer = self._observer
        span = observer.tracer.start_span(
            "POST",
            context=_trace.set_span_in_context(self._span),
            kind=_CLIENT,
            attributes=attrs,
        )
        # The attempt's own context, so that a gateway that traces joins this trace under it.
        # The propagators are the application's to configure: one that raises costs the
        # attempt its trace header, never the attempt.
        try:
            _propagate.inject(headers, context=_trace.set_span_in_context(span))
        except Exception:
            logger.warning("a propagator raised; the attempt goes without trace context")
        self._attempt = span
        self._attempt_status = None
        self._attempt_end = None
        self._attempts += 1
        if queued >= HELD:  # (most attempts are sent at once: no measurement to aggregate)
            self._queued += queued
            observer.instruments.queue_wait.record(queued, self._shape.model)

    def off_wire(self, status: int | None) -> None:
        if self._attempt is None:
            return
        # The span ends when we learn whether the attempt failed (a retry, or the call's end).
        self._attempt_end = time.time_ns()
        self._attempt_status = status
        if status is None:
            return
        if status < 400:
            self._attempt.set_attribute("http.response.status_code", status)
            return
        # A refused attempt failed whatever follows: said now, in one call (each call to a
        # span takes its lock), the status as its error.type (the HTTP conventions' way).
        self._attempt.set_attributes(
            {"http.response.status_code": status, "error.type": str(status)}
        )
        self._attempt.set_status(_ERROR)
        if status == 429:
            self._observer.instruments.throttled.add(1, self._shape.model)

    def _end_attempt(self, error: BaseException | None) -> None:
        span = self._attempt
        if span is None:
            return
        self._attempt = None
        status = self._attempt_status
        if error is not None and (status is None or status < 400):
            # No answer, or one that could not be read (a refusal said so when it came).
            span.set_attribute("error.type", error_type(error))
            span.set_status(_ERROR)
        span.end(end_time=self._attempt_end)

    def retrying(self, error: BaseException, wait: float) -> None:
        self._end_attempt(error)
        self._retries += 1
        reason = _retry_reason(error)
        event: Attributes = {
            "comet_sync.retry.attempt": self._retries,
            "comet_sync.retry.reason": reason,
            "comet_sync.retry.wait": wait,
            "error.type": error_type(error),
        }
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)):
            event["comet_sync.retry.retry_after"] = float(retry_after)
        self._span.add_event("comet_sync.retry", event)
        self._observer.instruments.retries.add(
            1, {**self._shape.model, "comet_sync.retry.reason": reason}
        )

    # -- the end -----------------------------------------------------------------------------

    def cache_hit(self) -> None:
        self._span.set_attribute("comet_sync.cache.hit", True)

    def finished(
        self,
        record: RequestRecord | None,
        answer: Mapping[str, Any] | None,
        error: BaseException | None,
    ) -> None:
        if self._done:
            return
        self._done = True
        self._end_attempt(error)
        observer = self._observer
        span = self._span
        # Sampled out: the measurements only (and the event, which has its own pipeline).
        recording = span.is_recording() or self._opening is not None
        attrs: Attributes = {}
        usage: dict[str, int] = {}
        answered_by = None
        output: list[Any] | None = None
        if answer is not None:
            raw = answer.get("usage")
            usage = usage_attributes(raw)  # (the span's, and the token histogram's)
            model = answer.get("model")
            if isinstance(model, str) and model:
                answered_by = model
            if recording:
                attrs = response_attributes(self._shape.op, answer)
                attrs.update(usage)
                attrs.update(usage_detail_attributes(raw))
                if observer.capture.content:  # (a cut stream: what came, as the reference)
                    reasons = attrs.get("gen_ai.response.finish_reasons")
                    output = output_messages(answer, reasons if isinstance(reasons, list) else [])
                    if output is not None:
                        output = scrub_json(output, self._secret)
                        if observer.capture.span:
                            attrs[OUTPUT] = dumps(output)
        if record is not None:
            duration = record.latency
            if recording:
                self._facts(record, attrs)
        else:
            duration = time.monotonic() - self._started
        metric, input_tokens, output_tokens = self._shape.measures(answered_by)
        if error is not None:
            kind = error_type(error)
            attrs["error.type"] = kind
            metric = {**metric, "error.type": kind}
            span.set_status(_ERROR, f"{type(error).__name__}: {error}")
        if attrs:
            span.set_attributes(attrs)
        span.end()
        instruments = observer.instruments
        instruments.in_flight.add(self._shape.flight, -1)
        instruments.duration.record(duration, metric)
        if error is None and usage:
            count = usage.get("gen_ai.usage.input_tokens")
            if count is not None:
                instruments.tokens.record(count, input_tokens)
            count = usage.get("gen_ai.usage.output_tokens")
            if count is not None:
                instruments.tokens.record(count, output_tokens)
        if self._opening is not None:
            self._event(attrs, output)

    def _event(self, closing: Attributes, output: list[Any] | None) -> None:
        """The call's details event: what its span carries, in the span's context, with the
        messages as structured values when content goes to events (none, else)."""
        observer = self._observer
        details: dict[str, Any] = {**(self._opening or {}), **closing}
        details.pop(INPUT, None)
        details.pop(OUTPUT, None)
        if observer.capture.event_content:
            if self._input is not None:
                details[INPUT] = self._input
            if output is not None:
                details[OUTPUT] = output
        try:
            observer.events.emit(
                _logs.LogRecord(
                    event_name=DETAILS,
                    attributes=details,
                    context=_trace.set_span_in_context(self._span),
                )
            )
        except Exception:  # a log pipeline that raises costs the event, never the call
            logger.warning("the call's GenAI event could not be emitted", exc_info=True)

    def _facts(self, record: RequestRecord, attrs: Attributes) -> None:
        """Adds to ``attrs`` what only we know: attempts, retries, time queued in our limiter,
        a fallback, the server's request id, time to the first chunk."""
        attrs["comet_sync.attempts"] = record.attempts
        if self._retries:
            attrs["comet_sync.retries"] = self._retries
        if self._queued:
            attrs["comet_sync.queue.wait"] = self._queued
        if record.first_chunk_latency is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = record.first_chunk_latency
        if record.fallback_from is not None:
            attrs["comet_sync.fallback.from"] = record.fallback_from
        if record.fallback_reason is not None:
            attrs["comet_sync.fallback.reason"] = record.fallback_reason
        if record.request_id is not None:
            attrs["comet_sync.request_id"] = record.request_id
