"""One attempt of a call: a permit from the limiter, the request on the wire, the answer's
status checked, then its JSON body read or its stream's first event awaited.

An attempt holds its concurrency slot only while its request is on the wire (the body
included), never while the retry loop waits before the next one. Every exit path gives the
permit back, with what the answer said about the server's limits.
"""

from __future__ import annotations

import math
from typing import Callable

from .._clock import Clock
from .._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    LimiterTimeoutError,
)
from .._http.error_map import (
    error_from_response,
    event_too_large,
    json_body,
    not_a_stream,
    not_an_answer,
    request_id_of,
    stream_ended_early,
)
from .._http.headers import ServerWord, parse_server_word
from .._http.sse import EventTooLargeError, iter_events
from .._http.transport import Exchange, Transport
from .._rate.protocol import LimiterProtocol, PermitProtocol, takes_scope
from .call import Answer, Call
from .request import Request
from .retry import RetryingCall, is_retryable
from .streaming import Stream

__all__ = ["MIN_ATTEMPT_SECONDS", "Attempts"]

# An attempt with less time than this left is not sent (it could not be answered in it).
MIN_ATTEMPT_SECONDS = 1e-3
# The AWS SDKs' standard retry mode charges 5 for a retry and 10 for one after a timeout or a
# broken connection (those tie up a connection for longer), from a quota of 500.
RETRY_COST = 5.0
RETRY_TIMEOUT_COST = 10.0


class Attempts:
    """Makes attempts for one client; shared by all its threads (no per-call state)."""

    def __init__(self, *, transport: Transport, limiter: LimiterProtocol, clock: Clock) -> None:
        self._transport = transport
        self._limiter = limiter
        self._clock = clock
        # The scope goes to the limiter as an argument; a limiter written before acquire took
        # one is called without it (it cannot watch a stop; its timeout still bounds it).
        self._scoped = takes_scope(limiter)

    def json(self, call: Call, required: tuple[str, ...]) -> Answer:
        """The decoded body of a 2xx answer, with its head."""
        req, log = call.request, call.log
        permit, exchange, word = self._send(call)
        try:
            # Reading the body is part of the request: it stays under the permit.
            body = exchange.read_body(call.options.max_response_bytes)
            log.off_wire(self._clock.monotonic())
            data = json_body(exchange, body, route=req.route, required=required)
        except BaseException:
            log.off_wire(self._clock.monotonic())
            _give_back(exchange, permit)
            raise
        exchange.close()
        usage = data.get("usage")
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        permit.release(
            exchange.status_code, word=word, total_tokens=total if isinstance(total, int) else None
        )
        return Answer(data, exchange)

    def stream(self, call: Call, kind: type[Stream], finish: Callable[..., None]) -> Stream:
        """A stream whose first event has arrived; retries are possible only until then."""
        req, log, options = call.request, call.log, call.options
        permit, exchange, _ = self._send(call)
        idle = _or_inf(options.timeout.read)
        try:
            ctype = exchange.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise not_a_stream(exchange, route=req.route)
            events = iter_events(exchange.iter_decoded(), max_event_bytes=options.max_event_bytes)
            # Keep-alive comments are no answer: the first event must come within the read
            # timeout (and the call's budget) however many of them arrive.
            exchange.attempt.rearm(idle)
            try:
                first = next(events)
            except StopIteration:
                raise stream_ended_early(req.route) from None
            except EventTooLargeError as exc:
                raise event_too_large(exchange, req.route, exc) from None
        except BaseException:
            log.off_wire(self._clock.monotonic())
            _give_back(exchange, permit)
            raise
        return kind(
            exchange=exchange,
            permit=permit,
            events=events,
            first=first,
            route=req.route,
            clock=self._clock.monotonic,
            idle=idle,
            finish=finish,
            request=req.snapshot,
        )

    def _send(self, call: Call) -> tuple[PermitProtocol, Exchange, ServerWord]:
        """Take a permit and send; a 2xx answer (body unread) with the permit still held, or
        raise with it released."""
        req, options, retry, log = call.request, call.options, call.retry, call.log
        scope = call.scope
        # After close(), a stopped map or an interrupt, nothing new leaves the process.
        scope.raise_if_stopped()
        remaining = _left_to_send(retry, req)
        watch = log.watch
        asked = self._clock.monotonic() if watch is not None else 0.0
        # Raises LimiterTimeoutError, never retried, when our own limits would hold this
        # attempt past the call's budget.
        try:
            if self._scoped:
                permit = self._limiter.acquire(
                    req.model,
                    cost=req.cost,
                    timeout=remaining,
                    retry_cost=_retry_cost(retry),
                    scope=scope,
                )
            else:
                permit = self._limiter.acquire(
                    req.model, cost=req.cost, timeout=remaining, retry_cost=_retry_cost(retry)
                )
        except LimiterTimeoutError as exc:
            last = retry.last_error
            if isinstance(last, APIError):
                # A retry our own caution held past the budget: the server's error is the news.
                last.giveup_reason = f"the retry was not sent: {exc}"
                raise last from None
            raise
        try:
            # The limiter may have held it while the scope stopped, or for most of the budget:
            # the attempt gets what is left after the wait, never what there was before it (16
            # threads on 8 slots took twice their total_timeout). Not sent: not an attempt.
            scope.raise_if_stopped()
            remaining = _left_to_send(retry, req)
        except BaseException:
            permit.release()
            raise
        try:
            timeout: tuple[float | None, float | None] = (
                options.timeout.connect,
                options.timeout.read,
            )
            if remaining is not None:
                # An attempt may not outlive the call's budget.
                timeout = (
                    min(_or_inf(timeout[0]), remaining),
                    min(_or_inf(timeout[1]), remaining),
                )
            headers = req.headers
            if watch is not None:
                # This attempt's own headers, for the trace context of this attempt.
                headers = dict(headers)
                watch.sending(headers, retry.tries - 1, self._clock.monotonic() - asked)
            # The attempt, its body included, may not outlive the call's budget.
            log.on_wire(self._clock.monotonic())
            exchange = self._transport.send(
                req.method,
                req.url,
                headers=headers,
                body=req.body,
                timeout=timeout,
                budget=remaining,
                scope=scope,
            )
        except BaseException:
            log.statuses.append(None)  # (before off_wire, which tells the status)
            log.off_wire(self._clock.monotonic())
            permit.release()
            raise
        status = exchange.status_code
        log.statuses.append(status)
        if status < 200:
            log.off_wire(self._clock.monotonic())
            exchange.close()  # unread: never reused
            permit.release()
            raise not_an_answer(exchange, route=req.route)
        # Every answer, 2xx included, may say how much of the server's budget is left.
        word = parse_server_word(exchange.headers, self._clock.wall())
        if status >= 300:
            try:
                err = error_from_response(exchange, route=req.route, now=self._clock.wall())
            except BaseException:
                log.off_wire(self._clock.monotonic())
                exchange.close()
                permit.release()
                raise
            log.off_wire(self._clock.monotonic())
            exchange.close()
            log.request_id = err.request_id
            permit.release(status, throttled=status == 429 and is_retryable(err), word=word)
            raise err
        log.request_id = request_id_of(exchange.headers)
        return permit, exchange, word


def _give_back(exchange: Exchange, permit: PermitProtocol) -> None:
    """An attempt that failed after its answer's head came: the connection and the slot."""
    exchange.close()
    permit.release(exchange.status_code)


def _left_to_send(retry: RetryingCall, req: Request) -> float | None:
    """Seconds of the call's budget left for an attempt (None: no budget)."""
    remaining = retry.remaining()
    if remaining is not None and remaining <= MIN_ATTEMPT_SECONDS:
        # Nothing left to send with (a caller that waited on another's identical call or for
        # a slot, a clock that moved): a timeout, never a socket timeout of 0 (which urllib3
        # refuses with a bare ValueError).
        raise APITimeoutError(
            f"{req.route}: the call's time budget ran out before it could be sent"
        )
    return remaining


def _or_inf(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


def _retry_cost(retry: RetryingCall) -> float:
    """What the next attempt pays from the retry quota (AWS SDK standard mode's prices)."""
    exc = retry.last_error
    if exc is None:
        return 0.0  # a first attempt
    if isinstance(exc, APIStatusError) and exc.status_code == 429:
        # A 429 retry passes through the pacing the 429 itself just tightened: it cannot pile
        # load on, so it is not charged.
        return 0.0
    return RETRY_TIMEOUT_COST if isinstance(exc, APIConnectionError) else RETRY_COST
