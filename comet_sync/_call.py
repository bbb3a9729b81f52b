"""One logical call: slot, attempt, retry, record. This is where retries happen.

``backoff`` drives the loop (attempt counting, give-up and backoff hooks); the decisions come
from ``_retry.decide``; the waiting goes through the client's injectable ``sleep``, which is
what lets the tests check every wait exactly without waiting. Each attempt holds a concurrency
slot only while its request is on the wire, never while it sleeps before a retry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import backoff

from ._config import RetryConfig, Timeout
from ._estimate import estimate_tokens
from ._exceptions import APIError, APIStatusError, APITimeoutError
from ._limiter import Limiter
from ._metrics import Metrics, RequestRecord
from ._retry import Decision, decide, is_retryable
from ._transport import Transport
from ._wire import error_from_response, json_body

__all__ = ["CallOptions", "CallRunner", "Clock"]

logger = logging.getLogger("comet_sync")


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


@dataclass
class _CallState:
    """What one call's attempts have seen so far; touched only by the calling thread."""

    start: float
    decision: Decision = field(default_factory=lambda: Decision(retry=False))
    attempt_statuses: list[int | None] = field(default_factory=list)
    request_id: str | None = None


class CallRunner:
    """Runs calls for one client; shared by all its threads (holds no per-call state)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: Transport,
        limiter: Limiter,
        metrics: Metrics,
        clock: Clock,
        on_request: Callable[[RequestRecord], None] | None,
    ) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._auth_header = f"Bearer {api_key}"
        self._transport = transport
        self._limiter = limiter
        self._metrics = metrics
        self._clock = clock
        self._on_request = on_request

    def post_json(
        self,
        route: str,
        payload: dict[str, Any],
        *,
        options: CallOptions,
        required: tuple[str, ...],
    ) -> dict[str, Any]:
        """POST ``payload`` to ``route`` with retries; the decoded JSON answer."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {
            "Authorization": self._auth_header,
            "Content-Type": "application/json",
            "Accept": "application/json",
            **options.extra_headers,
        }
        model = payload.get("model")
        model = model if isinstance(model, str) else None
        state = _CallState(start=self._clock.monotonic())
        cost = float(estimate_tokens(payload)) if self._limiter.paces_tokens else 0.0

        def attempt() -> dict[str, Any]:
            return self._attempt(route, headers, body, cost, required, options, state)

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
            on_backoff=lambda details: self._on_backoff(details, route, model, state),
            logger=None,
        )(attempt)

        result: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            result = retrying()
            return result
        except APIError as exc:
            error = exc
            exc.attempts = len(state.attempt_statuses)
            if is_retryable(exc) and exc.giveup_reason is None:
                exc.giveup_reason = state.decision.reason or (
                    f"{exc.attempts} attempts made (max_retries={options.retry.max_retries})"
                )
            if exc.giveup_reason:
                logger.warning(
                    "giving up on %s model=%s after %d attempt(s): %s",
                    route, model, exc.attempts, exc,
                )
            raise
        except BaseException as exc:  # KeyboardInterrupt mid-call still gets its record
            error = exc
            raise
        finally:
            self._record(route, model, state, result, error)

    # -- one attempt -------------------------------------------------------------------------

    def _attempt(
        self,
        route: str,
        headers: dict[str, str],
        body: bytes,
        cost: float,
        required: tuple[str, ...],
        options: CallOptions,
        state: _CallState,
    ) -> dict[str, Any]:
        timeout = options.timeout
        remaining = self._remaining(options.retry, state)
        if remaining is not None:
            # An attempt may not outlive the call's budget.
            timeout = Timeout(connect=min(timeout.connect, remaining),
                              read=min(timeout.read, remaining))
        permit = self._limiter.acquire(
            cost=cost, timeout=remaining, first_attempt=not state.attempt_statuses
        )
        if permit is None:
            state.attempt_statuses.append(None)
            raise APITimeoutError(
                f"{route}: the limiter could not let this call out within total_timeout "
                f"({self._limiter.in_use} in flight, limit {self._limiter.limit})"
            )
        try:
            response = self._transport.send(
                "POST", self._base_url + route, headers=headers, body=body, timeout=timeout
            )
            # Reading the body is part of the request: it stays under the permit.
            response.content  # noqa: B018
        except BaseException:
            state.attempt_statuses.append(None)
            permit.release()
            raise
        status = response.status_code
        state.attempt_statuses.append(status)
        if status >= 300:
            err = error_from_response(response, route=route, secret=self._api_key)
            state.request_id = err.request_id
            permit.release(
                status,
                throttled=status == 429 and is_retryable(err),
                retry_after=err.retry_after,
            )
            raise err
        state.request_id = response.headers.get("x-request-id") or response.headers.get(
            "x-oneapi-request-id"
        )
        try:
            data = json_body(response, route=route, required=required, secret=self._api_key)
        except BaseException:
            permit.release(status)
            raise
        usage = data.get("usage")
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        permit.release(status, total_tokens=total if isinstance(total, int) else None)
        return data

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
        # 429 retries are not charged: they pass through the limiter, which the 429 itself has
        # just told to send less, so they cannot pile load on. 5xx and connection failures
        # have no such brake, and an outage must not be met with a retry storm.
        throttled = isinstance(exc, APIStatusError) and exc.status_code == 429
        if state.decision.retry and not throttled and not self._limiter.allow_retry():
            state.decision = Decision(
                retry=False,
                reason=(
                    "retry budget exhausted: retries may add only a bounded share of the "
                    "load, and this client's recent calls have used it up"
                ),
            )
        if not state.decision.retry and state.decision.reason and isinstance(exc, APIError):
            exc.giveup_reason = state.decision.reason
        return not state.decision.retry

    def _on_backoff(
        self, details: Any, route: str, model: str | None, state: _CallState
    ) -> None:
        exc = details.get("exception")
        logger.debug(
            "retrying %s model=%s after attempt %d (status=%s, request_id=%s): waiting %.3fs: %s",
            route, model, details["tries"], state.attempt_statuses[-1], state.request_id,
            state.decision.wait, exc,
        )
        self._clock.sleep(state.decision.wait)

    # -- the record --------------------------------------------------------------------------

    def _record(
        self,
        route: str,
        model: str | None,
        state: _CallState,
        result: dict[str, Any] | None,
        error: BaseException | None,
    ) -> None:
        usage = result.get("usage") if result is not None else None
        rec = RequestRecord(
            route=route,
            # The model asked for, not the dated snapshot id the answer may name, so that one
            # model's successes and failures add up under one key.
            model=model,
            status=state.attempt_statuses[-1] if state.attempt_statuses else None,
            latency=self._clock.monotonic() - state.start,
            attempts=len(state.attempt_statuses),
            request_id=state.request_id,
            error=type(error).__name__ if error is not None else None,
            usage=usage if isinstance(usage, dict) else None,
            attempt_statuses=tuple(state.attempt_statuses),
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s model=%s status=%s attempts=%d latency=%.3fs request_id=%s error=%s",
                rec.route, rec.model, rec.status, rec.attempts, rec.latency, rec.request_id,
                rec.error,
            )
        self._metrics.record(rec)
        if self._on_request is not None:
            try:
                self._on_request(rec)
            except Exception:
                # A broken hook must never break the call it reports on.
                logger.warning("on_request hook raised; the call is unaffected", exc_info=True)
