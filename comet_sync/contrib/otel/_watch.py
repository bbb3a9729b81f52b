"""Each call as spans and measurements: the observer the instrumentor installs, and the watch
it gives each call (see ``comet_sync._observe`` for when the core calls what).

Spans: one per logical call (``chat {model}``, kind CLIENT), started when the call begins in
the caller's context (a Flask or Django request's span, a batch's), and ended when the call
ends: a stream's when the stream ends, is closed or cut. Under it, one span per HTTP attempt
(``POST``), whose context goes out in that attempt's ``traceparent``. Retries are events on
the call's span, with their wait and reason.

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

from ..._exceptions import scrub
from .._errors import require
from ._attributes import (
    Attributes,
    Operation,
    operation_of,
    request_attributes,
    response_attributes,
    server_of,
    usage_attributes,
)
from ._content import input_messages, output_messages
from ._instruments import Instruments

if TYPE_CHECKING:
    from ..._rate.limiter import LimiterProtocol
    from ..._records import RequestRecord

_trace = require("opentelemetry.trace", "otel")
_propagate = require("opentelemetry.propagate", "otel")

__all__ = ["CallSpan", "OtelObserver"]

logger = logging.getLogger("comet_sync")

_CLIENT = _trace.SpanKind.CLIENT
_ERROR = _trace.StatusCode.ERROR


# Time between asking our limiter and being let out that counts as held: below it, the wait
# was the limiter's own bookkeeping (microseconds), and a histogram record per call costs more
# than it tells.
HELD = 0.001


class OtelObserver:
    """Gives each GenAI call (chat, responses, embeddings) a :class:`CallSpan`; the model list
    and other routes are left alone."""

    def __init__(
        self, tracer: Any, instruments: Instruments, *, provider: str, capture: bool
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.provider = provider  # gen_ai.provider.name
        self.capture = capture  # message content on the spans

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
        op = operation_of(route)
        if op is None:
            return None
        self.instruments.paces.watch(limiter)
        return CallSpan(self, op, payload, base_url, stream, secret)


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
        "_base",
        "_done",
        "_flight",
        "_model",
        "_observer",
        "_op",
        "_queued",
        "_retries",
        "_server",
        "_span",
        "_started",
        "_url",
    )

    def __init__(
        self,
        observer: OtelObserver,
        op: Operation,
        payload: Mapping[str, Any],
        base_url: str,
        stream: bool,
        secret: str,
    ) -> None:
        self._observer = observer
        self._op = op
        self._url = base_url + op.route
        attrs = request_attributes(op, payload, stream)
        attrs["gen_ai.provider.name"] = observer.provider
        address, port = server_of(base_url)
        server: Attributes = {}
        if address:
            server["server.address"] = address
        if port is not None:
            server["server.port"] = port
        self._server = server
        attrs.update(server)
        model = attrs.get("gen_ai.request.model")
        self._model: Attributes = {"gen_ai.request.model": model} if model else {}
        # What every measurement of this call carries (the conventions' attribute set).
        self._base: Attributes = {
            "gen_ai.operation.name": op.name,
            "gen_ai.provider.name": observer.provider,
            **self._model,
            **server,
        }
        if observer.capture:
            messages = input_messages(payload)
            if messages is not None:
                # A prompt may quote the key (a user pasting a config into a chat): it is
                # scrubbed here, as answers are where they arrive.
                messages = scrub(messages, secret)
                attrs["gen_ai.input.messages"] = messages
        self._flight = tuple(self._base.items())  # (its key among the calls in flight)
        name = f"{op.name} {model}" if model else op.name
        self._span = observer.tracer.start_span(name, kind=_CLIENT, attributes=attrs)
        self._started = time.monotonic()  # for a call that ends without a record
        self._attempt: Any = None  # the attempt's span, until it is ended
        self._attempt_status: int | None = None
        self._attempt_end: int | None = None  # when it came off the wire (ns, span clock)
        self._attempts = 0
        self._queued = 0.0
        self._retries = 0
        self._done = False
        observer.instruments.in_flight.add(self._flight, 1)

    # -- attempts ----------------------------------------------------------------------------

    def sending(self, headers: dict[str, str], resend_count: int, queued: float) -> None:
        self._end_attempt(None)
        attrs: Attributes = {"http.request.method": "POST", "url.full": self._url}
        attrs.update(self._server)
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
            observer.instruments.queue_wait.record(queued, self._model)

    def off_wire(self, status: int | None) -> None:
        if self._attempt is None:
            return
        # The span ends when we learn whether the attempt failed (a retry, or the call's end).
        self._attempt_end = time.time_ns()
        self._attempt_status = status
        if status is not None:
            self._attempt.set_attribute("http.response.status_code", status)
            if status == 429:
                self._observer.instruments.throttled.add(1, self._model)

    def _end_attempt(self, error: BaseException | None) -> None:
        span = self._attempt
        if span is None:
            return
        self._attempt = None
        status = self._attempt_status
        if status is not None and status >= 400:
            span.set_attribute("error.type", str(status))  # (the HTTP conventions' way)
            span.set_status(_ERROR)
        elif error is not None:  # no answer, or one that could not be read
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
            1, {**self._model, "comet_sync.retry.reason": reason}
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
        recording = span.is_recording()  # (sampled out: the measurements only)
        attrs: Attributes = {}
        if answer is not None and recording:
            attrs.update(response_attributes(self._op, answer))
            if observer.capture and error is None:
                reasons = attrs.get("gen_ai.response.finish_reasons")
                messages = output_messages(answer, reasons if isinstance(reasons, list) else [])
                if messages is not None:
                    attrs["gen_ai.output.messages"] = messages
        duration = time.monotonic() - self._started
        if record is not None:
            duration = record.latency
            if recording:
                attrs.update(self._facts(record))
        metric = dict(self._base)
        model = answer.get("model") if answer is not None else None
        if isinstance(model, str) and model:
            metric["gen_ai.response.model"] = model
        if error is not None:
            kind = error_type(error)
            attrs["error.type"] = kind
            metric["error.type"] = kind
            span.set_status(_ERROR, f"{type(error).__name__}: {error}")
        span.set_attributes(attrs)
        span.end()
        instruments = observer.instruments
        instruments.in_flight.add(self._flight, -1)
        instruments.duration.record(duration, metric)
        if error is None and answer is not None:
            usage = usage_attributes(answer.get("usage"))
            for key, kind in (
                ("gen_ai.usage.input_tokens", "input"),
                ("gen_ai.usage.output_tokens", "output"),
            ):
                if key in usage:
                    instruments.tokens.record(usage[key], {**metric, "gen_ai.token.type": kind})

    def _facts(self, record: RequestRecord) -> Attributes:
        """What only we know: attempts, retries, time queued in our limiter, a fallback, the
        server's request id, time to the first chunk."""
        facts: Attributes = {"comet_sync.attempts": record.attempts}
        if self._retries:
            facts["comet_sync.retries"] = self._retries
        if self._queued:
            facts["comet_sync.queue.wait"] = self._queued
        if record.first_chunk_latency is not None:
            facts["gen_ai.response.time_to_first_chunk"] = record.first_chunk_latency
        if record.fallback_from is not None:
            facts["comet_sync.fallback.from"] = record.fallback_from
        if record.fallback_reason is not None:
            facts["comet_sync.fallback.reason"] = record.fallback_reason
        if record.request_id is not None:
            facts["comet_sync.request_id"] = record.request_id
        return facts
