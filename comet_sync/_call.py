"""One logical call: slot, attempt, retry, record. This is where retries happen.

``backoff`` drives the loop (attempt counting, give-up and backoff hooks); the decisions come
from ``_retry.decide``; the waiting goes through the client's injectable ``sleep``, which is
what lets the tests check every wait exactly without waiting. Each attempt holds a concurrency
slot only while its request is on the wire, never while it sleeps before a retry.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import backoff

from . import _cancel
from ._cancel import Scope
from ._config import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    RetryConfig,
    Timeout,
)
from ._estimate import estimate_tokens
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    LimiterTimeoutError,
)
from ._headers import ServerWord, parse_server_word
from ._limiter import LimiterProtocol, PermitProtocol
from ._metrics import Metrics, RequestRecord
from ._raw import raw_sink
from ._retry import Decision, attempts, decide, is_retryable
from ._sse import EventTooLargeError, iter_events
from ._streaming import Stream
from ._transport import Exchange, Transport
from ._wire import error_from_response, json_body, not_a_stream, request_id_of

__all__ = ["CallOptions", "CallRunner", "Clock"]

logger = logging.getLogger("comet_sync")

T = TypeVar("T")

# An attempt with less time than this left is not sent (it could not be answered in it).
MIN_ATTEMPT_SECONDS = 1e-3
# The AWS SDKs' standard retry mode charges 5 for a retry and 10 for one after a timeout or a
# broken connection (those tie up a connection for longer), from a quota of 500.
RETRY_COST = 5.0
RETRY_TIMEOUT_COST = 10.0


@dataclass(frozen=True)
class Clock:
    """The sources of time and chance a client uses; tests inject fakes."""

    monotonic: Callable[[], float]
    sleep: Callable[[float], None]
    random: Callable[[], float]


@dataclass(frozen=True)
class CallOptions:
    """A call's settings after per-call overrides are applied."""

    timeout: Timeout
    retry: RetryConfig
    extra_headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    # Caps on what an answer may hold, decoded: a whole body, one streamed event.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES


@dataclass(frozen=True)
class _Request:
    method: str
    route: str
    url: str
    model: str | None
    headers: dict[str, str]
    body: bytes | None
    cost: float


@dataclass
class _CallState:
    """What one call's attempts have seen so far; touched only by the calling thread."""

    start: float
    decision: Decision = field(default_factory=lambda: Decision(retry=False))
    attempt_statuses: list[int | None] = field(default_factory=list)
    request_id: str | None = None
    last_error: BaseException | None = None
    scope: Scope | None = None


class CallRunner:
    """Runs calls for one client; shared by all its threads (holds no per-call state)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: Transport,
        limiter: LimiterProtocol,
        metrics: Metrics,
        clock: Clock,
        on_request: Callable[[RequestRecord], None] | None,
        scope: Scope,
    ) -> None:
        self._scope = scope
        self._base_url = base_url
        self._api_key = api_key
        self._auth_header = f"Bearer {api_key}"
        self._transport = transport
        self._limiter = limiter
        self._metrics = metrics
        self._clock = clock
        self._on_request = on_request

    def request_json(
        self,
        method: str,
        route: str,
        payload: dict[str, Any] | None,
        *,
        options: CallOptions,
        required: tuple[str, ...],
        sink: Callable[[RequestRecord], None] | None = None,
        fallback: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one request with retries; the decoded JSON answer. ``sink`` also receives the
        call's record; ``fallback`` (the model left, and why) goes into it."""
        req = self._request(method, route, payload, options, accept="application/json")
        state = _CallState(start=self._clock.monotonic())
        result: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            with _cancel.entered(self._scope) as scope:
                state.scope = scope
                result = self._run(
                    req, options, state, lambda: self._json_attempt(req, required, options, state)
                )
            return result
        except BaseException as exc:  # KeyboardInterrupt mid-call still gets its record
            error = exc
            raise
        finally:
            usage = result.get("usage") if result is not None else None
            self.record(
                req.route,
                req.model,
                state,
                error=error,
                usage=usage if isinstance(usage, dict) else None,
                sink=sink,
                fallback=fallback,
            )

    def open_stream(
        self,
        route: str,
        payload: dict[str, Any],
        *,
        options: CallOptions,
        fallback: tuple[str, str] | None = None,
        kind: type[Stream] = Stream,
    ) -> Stream:
        """Open a streamed call, retrying until its first event arrives; the stream writes
        the call's record when it ends."""
        req = self._request("POST", route, payload, options, accept="text/event-stream")
        state = _CallState(start=self._clock.monotonic())
        try:
            with _cancel.entered(self._scope) as scope:
                state.scope = scope
                return self._run(
                    req,
                    options,
                    state,
                    lambda: self._stream_attempt(req, options, state, fallback, kind),
                )
        except BaseException as exc:
            self.record(req.route, req.model, state, error=exc, fallback=fallback)
            raise

    def _request(
        self,
        method: str,
        route: str,
        payload: dict[str, Any] | None,
        options: CallOptions,
        *,
        accept: str,
    ) -> _Request:
        headers = {"Authorization": self._auth_header, "Accept": accept}
        body = None
        if payload is not None:
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        headers.update(options.extra_headers)
        model = payload.get("model") if payload is not None else None
        name = model if isinstance(model, str) else None
        cost = (
            float(estimate_tokens(payload))
            if payload is not None and self._limiter.paces_tokens(name)
            else 0.0
        )
        url = self._base_url + route
        if options.query:
            url += "?" + urllib.parse.urlencode(options.query)
        return _Request(
            method=method, route=route, url=url, model=name, headers=headers, body=body, cost=cost
        )

    def _run(
        self, req: _Request, options: CallOptions, state: _CallState, attempt: Callable[[], T]
    ) -> T:
        retrying = backoff.on_exception(
            # backoff would sleep with time.sleep, which no test can fake: it is handed waits
            # of 0, and the wait _giveup decided is slept in _on_backoff through the
            # injectable sleep, after the attempt is logged.
            backoff.constant,
            APIError,
            interval=0,
            max_tries=options.retry.max_retries + 1,
            jitter=None,
            giveup=lambda exc: self._giveup(exc, state, options.retry),
            on_backoff=lambda details: self._on_backoff(details, req, state),
            logger=None,
        )(attempt)
        try:
            return retrying()
        except APIError as exc:
            exc.attempts = len(state.attempt_statuses)
            if is_retryable(exc) and exc.giveup_reason is None:
                exc.giveup_reason = state.decision.reason or (
                    f"{attempts(exc.attempts)} made (max_retries={options.retry.max_retries})"
                )
            if exc.giveup_reason:
                logger.warning(
                    "giving up on %s model=%s after %s: %s",
                    req.route,
                    req.model,
                    attempts(exc.attempts),
                    exc,
                )
            raise

    # -- one attempt -------------------------------------------------------------------------

    def _json_attempt(
        self, req: _Request, required: tuple[str, ...], options: CallOptions, state: _CallState
    ) -> dict[str, Any]:
        permit, exchange, word = self._send(req, options, state)
        try:
            # Reading the body is part of the request: it stays under the permit.
            body = exchange.read_body(options.max_response_bytes)
            data = json_body(
                exchange, body, route=req.route, required=required, secret=self._api_key
            )
        except BaseException:
            exchange.close()
            permit.release(exchange.status_code)
            raise
        exchange.close()
        sink = raw_sink.get()
        if sink is not None:  # a with_raw_response call wants the answer's head
            sink(exchange.snapshot("", self._api_key))
        usage = data.get("usage")
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        permit.release(
            exchange.status_code, word=word, total_tokens=total if isinstance(total, int) else None
        )
        return data

    def _stream_attempt(
        self,
        req: _Request,
        options: CallOptions,
        state: _CallState,
        fallback: tuple[str, str] | None,
        kind: type[Stream],
    ) -> Stream:
        permit, exchange, _ = self._send(req, options, state)
        try:
            ctype = exchange.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise not_a_stream(exchange, route=req.route, secret=self._api_key)
            events = iter_events(exchange.iter_decoded(), max_event_bytes=options.max_event_bytes)
            # Keep-alive comments are no answer: the first event must come within the read
            # timeout (and the call's budget) however many of them arrive.
            exchange.attempt.rearm(_or_inf(options.timeout.read))
            # Retries are possible only until the first event: after it, the answer has begun.
            try:
                first = next(events)
            except StopIteration:
                raise APIConnectionError(
                    f"{req.route}: the stream ended before its first event"
                ) from None
            except EventTooLargeError as exc:
                raise APIResponseValidationError(
                    f"{req.route}: {exc}",
                    response=exchange.snapshot(""),
                    status_code=exchange.status_code,
                ) from None
        except BaseException:
            exchange.close()
            permit.release(exchange.status_code)
            raise
        sink = raw_sink.get()
        if sink is not None:
            sink(exchange.snapshot("", self._api_key))
        return kind(
            exchange=exchange,
            permit=permit,
            events=events,
            first=first,
            route=req.route,
            secret=self._api_key,
            clock=self._clock.monotonic,
            idle=_or_inf(options.timeout.read),
            finish=lambda **kw: self.record(req.route, req.model, state, fallback=fallback, **kw),
        )

    def _send(
        self,
        req: _Request,
        options: CallOptions,
        state: _CallState,
    ) -> tuple[PermitProtocol, Exchange, ServerWord]:
        """Take a permit and send; a 2xx answer (body unread) with the permit still held, or
        raise with it released."""
        scope = state.scope or self._scope
        # After close(), a stopped map or an interrupt, nothing new leaves the process.
        scope.raise_if_stopped()
        timeout = options.timeout
        remaining = self._remaining(options.retry, state)
        if remaining is not None:
            if remaining <= MIN_ATTEMPT_SECONDS:
                # Nothing left to send with (a caller that waited on another's identical call,
                # a clock that moved): a timeout, never a socket timeout of 0 (which urllib3
                # refuses with a bare ValueError).
                raise APITimeoutError(
                    f"{req.route}: the call's time budget ran out before it could be sent"
                )
            # An attempt may not outlive the call's budget.
            timeout = Timeout(
                connect=min(_or_inf(timeout.connect), remaining),
                read=min(_or_inf(timeout.read), remaining),
            )
        # Raises LimiterTimeoutError, never retried, when our own limits would hold this
        # attempt past the call's budget.
        try:
            permit = self._limiter.acquire(
                req.model, cost=req.cost, timeout=remaining, retry_cost=_retry_cost(state)
            )
        except LimiterTimeoutError as exc:
            last = state.last_error
            if isinstance(last, APIError):
                # A retry our own caution held past the budget: the server's error is the news.
                last.giveup_reason = (
                    f"the call's time budget ends before {exc.held_by} lets the retry out"
                )
                raise last from None
            raise
        try:
            # The limiter may have held it while the scope stopped.
            scope.raise_if_stopped()
            # The attempt, its body included, may not outlive the call's budget.
            exchange = self._transport.send(
                req.method,
                req.url,
                headers=req.headers,
                body=req.body,
                timeout=timeout,
                budget=remaining,
                scope=scope,
            )
        except BaseException:
            state.attempt_statuses.append(None)
            permit.release()
            raise
        status = exchange.status_code
        state.attempt_statuses.append(status)
        # Every answer, 2xx included, may say how much of the server's budget is left.
        word = parse_server_word(exchange.headers, time.time())
        if status >= 300:
            try:
                err = error_from_response(exchange, route=req.route, secret=self._api_key)
            except BaseException:
                exchange.close()
                permit.release()
                raise
            exchange.close()
            state.request_id = err.request_id
            permit.release(status, throttled=status == 429 and is_retryable(err), word=word)
            raise err
        state.request_id = request_id_of(exchange.headers)
        return permit, exchange, word

    def _remaining(self, retry: RetryConfig, state: _CallState) -> float | None:
        if retry.total_timeout is None:
            return None
        return max(retry.total_timeout - (self._clock.monotonic() - state.start), 0.0)

    # -- hooks handed to backoff ------------------------------------------------------------

    def _giveup(self, exc: Exception, state: _CallState, retry: RetryConfig) -> bool:
        state.decision = decide(
            exc,
            retry_number=len(state.attempt_statuses) - 1,
            config=retry,
            elapsed=self._clock.monotonic() - state.start,
            random=self._clock.random,
        )
        state.last_error = exc
        if not state.decision.retry and state.decision.reason and isinstance(exc, APIError):
            exc.giveup_reason = state.decision.reason
        return not state.decision.retry

    def _on_backoff(self, details: Any, req: _Request, state: _CallState) -> None:
        exc = details.get("exception")
        logger.debug(
            "retrying %s model=%s after attempt %d (status=%s, request_id=%s): waiting %.3fs: %s",
            req.route,
            req.model,
            details["tries"],
            state.attempt_statuses[-1],
            state.request_id,
            state.decision.wait,
            exc,
        )
        self._clock.sleep(state.decision.wait)

    # -- the record --------------------------------------------------------------------------

    def record(
        self,
        route: str,
        model: str | None,
        state: _CallState | None,
        *,
        error: BaseException | None = None,
        usage: dict[str, Any] | None = None,
        chunks: int | None = None,
        first_chunk_at: float | None = None,
        cached: bool = False,
        started: float | None = None,
        sink: Callable[[RequestRecord], None] | None = None,
        fallback: tuple[str, str] | None = None,
    ) -> None:
        """Write a call's record: metrics, the debug log, the user's hook."""
        now = self._clock.monotonic()
        start = state.start if state is not None else (started if started is not None else now)
        statuses = tuple(state.attempt_statuses) if state is not None else ()
        rec = RequestRecord(
            route=route,
            # The model asked for, not the dated snapshot id the answer may name, so that one
            # model's successes and failures add up under one key.
            model=model,
            status=statuses[-1] if statuses else (200 if cached else None),
            latency=now - start,
            attempts=len(statuses),
            request_id=state.request_id if state is not None else None,
            error=type(error).__name__ if error is not None else None,
            usage=usage,
            attempt_statuses=statuses,
            cached=cached,
            chunks=chunks,
            first_chunk_latency=first_chunk_at - start if first_chunk_at is not None else None,
            fallback_from=fallback[0] if fallback is not None else None,
            fallback_reason=fallback[1] if fallback is not None else None,
        )
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


def _or_inf(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


def _retry_cost(state: _CallState) -> float:
    """What the next attempt pays from the retry quota (AWS SDK standard mode's prices)."""
    exc = state.last_error
    if exc is None or not state.attempt_statuses:
        return 0.0  # a first attempt
    if isinstance(exc, APIStatusError) and exc.status_code == 429:
        # A 429 retry passes through the pacing the 429 itself just tightened: it cannot pile
        # load on, so it is not charged.
        return 0.0
    return RETRY_TIMEOUT_COST if isinstance(exc, APIConnectionError) else RETRY_COST
