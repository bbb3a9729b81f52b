"""The record of every call: what one call saw (:class:`CallLog`), and the one place its
:class:`RequestRecord` is built and handed out (:class:`Recorder`): to the metrics, which fold
it, to the debug log, to a batch's sink and to the user's ``on_request`` hook.

A call made, a stream ended, an answer from the response cache: each becomes a record here, and
nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Union

from ._clock import Clock
from ._exceptions import ClientClosedError
from ._metrics import Metrics

if TYPE_CHECKING:
    from ._observe import CallWatch

__all__ = ["CallLog", "Recorder", "RequestRecord"]

logger = logging.getLogger("comet_sync")

# The answer handed to an observer: the JSON itself, or (a stream's) a function assembling it,
# called only when an observer wants it.
Answer = Union[Mapping[str, Any], Callable[[], Union[Mapping[str, Any], None]], None]


@dataclass(frozen=True)
class RequestRecord:
    """One logical call, retries included.

    ``status`` is the last HTTP status (None when no response came); ``latency`` covers the
    whole call in seconds, waits included; ``wire_latency`` only its attempts' time on the
    wire, each from sending to the end of its answer (the latency less time queued in our
    limiter and retry waits: what the server and the network took); ``attempt_statuses``
    lists each attempt's status in order, so 429s absorbed by retries stay visible; ``error``
    is the exception class name when the call failed. A cache hit has ``cached=True``, no
    attempts and its (tiny) latency; a streamed call is recorded when its stream ends, with
    ``chunks`` and ``first_chunk_latency``.
    """

    route: str
    model: str | None
    status: int | None
    latency: float
    attempts: int
    request_id: str | None = None
    error: str | None = None
    usage: Mapping[str, Any] | None = None
    attempt_statuses: tuple[int | None, ...] = ()
    cached: bool = False  # answered from the response cache, no request sent
    chunks: int | None = None  # streamed calls: chunks received
    first_chunk_latency: float | None = None  # streamed calls: seconds to the first chunk
    # A call made on a fallback model: the model it moved from, and why.
    fallback_from: str | None = None
    fallback_reason: str | None = None
    wire_latency: float = 0.0  # seconds the attempts spent on the wire

    @property
    def ok(self) -> bool:
        return self.error is None


class CallLog:
    """What one call has seen so far. Touched only by the thread running the call (a stream's
    by the thread reading it)."""

    __slots__ = (
        "_wire_since",
        "fallback",
        "model",
        "request_id",
        "route",
        "sink",
        "start",
        "statuses",
        "watch",
        "wire",
    )

    def __init__(
        self,
        route: str,
        model: str | None,
        start: float,
        *,
        sink: Callable[[RequestRecord], None] | None = None,
        fallback: tuple[str, str] | None = None,
        watch: CallWatch | None = None,
    ) -> None:
        self.route: str = route
        # The model asked for, not the dated snapshot id the answer may name, so that one
        # model's successes and failures add up under one key.
        self.model: str | None = model
        self.start: float = start
        self.statuses: list[int | None] = []  # each attempt's status; None: no answer
        self.request_id: str | None = None
        self.sink: Callable[[RequestRecord], None] | None = (
            sink  # also receives the record (the batch engine's per-job figures)
        )
        self.fallback: tuple[str, str] | None = (
            fallback  # (the model left, why) for a call made on a fallback
        )
        self.wire: float = 0.0  # seconds on the wire, attempts that ended
        self._wire_since: float | None = None  # the attempt on the wire now: when it was sent
        self.watch: CallWatch | None = watch  # an observer's (None: nobody watches, the usual case)

    def on_wire(self, now: float) -> None:
        """An attempt is being sent."""
        self._wire_since = now

    def off_wire(self, now: float) -> None:
        """The attempt on the wire ended (its answer read, or its failure); once. Its status
        is in ``statuses`` by then."""
        if self._wire_since is not None:
            self.wire += now - self._wire_since
            self._wire_since = None
            if self.watch is not None:
                self.watch.off_wire(self.statuses[-1] if self.statuses else None)


class Recorder:
    """Builds each call's record and hands it out. Shared by every thread of a client; holds
    no state of its own (the metrics lock their own)."""

    def __init__(
        self,
        metrics: Metrics,
        clock: Clock,
        on_request: Callable[[RequestRecord], None] | None,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._on_request = on_request

    def finish(
        self,
        log: CallLog,
        *,
        error: BaseException | None = None,
        usage: Mapping[str, Any] | None = None,
        chunks: int | None = None,
        first_chunk_at: float | None = None,
        answer: Answer = None,
    ) -> None:
        """A call (or a stream) ended, with ``error`` or without; ``answer`` is for an
        observer."""
        statuses = tuple(log.statuses)
        if not statuses and isinstance(error, ClientClosedError):
            # Stopped before it sent anything (a stopped batch's queued jobs): no call was
            # made, so none failed. The batch sends it on resume.
            return
        fallback = log.fallback
        now = self._clock.monotonic()
        log.off_wire(now)  # a stream's answer ends with the stream
        record = RequestRecord(
            route=log.route,
            model=log.model,
            status=statuses[-1] if statuses else None,
            latency=now - log.start,
            wire_latency=log.wire,
            attempts=len(statuses),
            request_id=log.request_id,
            error=type(error).__name__ if error is not None else None,
            usage=usage,
            attempt_statuses=statuses,
            chunks=chunks,
            first_chunk_latency=first_chunk_at - log.start if first_chunk_at is not None else None,
            fallback_from=fallback[0] if fallback is not None else None,
            fallback_reason=fallback[1] if fallback is not None else None,
        )
        self._emit(record, log.sink)
        if log.watch is not None:
            _tell(log.watch, record, answer, error)

    def cache_hit(
        self,
        route: str,
        model: str | None,
        started: float,
        sink: Callable[[RequestRecord], None] | None = None,
        *,
        watch: CallWatch | None = None,
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        """A call answered from the response cache: no attempt, status 200."""
        record = RequestRecord(
            route=route,
            model=model,
            status=200,
            latency=self._clock.monotonic() - started,
            attempts=0,
            cached=True,
        )
        self._emit(record, sink)
        if watch is not None:
            watch.cache_hit()
            _tell(watch, record, answer, None)

    def _emit(self, rec: RequestRecord, sink: Callable[[RequestRecord], None] | None) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s model=%s status=%s attempts=%d latency=%.3fs request_id=%s error=%s",
                rec.route,
                rec.model,
                rec.status,
                rec.attempts,
                rec.latency,
                rec.request_id,
                rec.error,
            )
        self._metrics.record(rec)
        if sink is not None:
            sink(rec)
        if self._on_request is not None:
            try:
                self._on_request(rec)
            except Exception:
                # A broken hook must never break the call it reports on.
                logger.warning("on_request hook raised; the call is unaffected", exc_info=True)


def _tell(
    watch: CallWatch, record: RequestRecord, answer: Answer, error: BaseException | None
) -> None:
    """The call's end, to its observer; a broken observer never breaks the call."""
    try:
        watch.finished(record, answer() if callable(answer) else answer, error)
    except Exception:
        logger.warning("the call's observer raised; the call is unaffected", exc_info=True)
