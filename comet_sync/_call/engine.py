"""One logical call, put together: the request built once (``request.py``), attempts made
(``attempt.py``) inside backoff's retry loop (``retry.py``), each handed the one
:class:`~comet_sync._call.call.Call` that holds what they share, the record written once
(``_records.py``), and the response cache in front of JSON calls (``cache.py``). A JSON call
returns its body with its answer's head (:class:`~comet_sync._call.call.Answer`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable

from .. import _cancel, _observe
from .._clock import Clock
from .._config import CallOptions
from .._exceptions import NO_REQUEST, APIError, APITimeoutError
from .._http.transport import Transport
from .._observe import CallWatch
from .._rate.protocol import LimiterProtocol
from .._records import CallLog, Recorder, RequestRecord
from .attempt import Attempts
from .cache import ResponseCache
from .call import Answer, Call
from .request import Request, build_request
from .retry import RetryingCall, RetryLoop, attempts
from .streaming import Stream

__all__ = ["CallRunner"]

logger = logging.getLogger("comet_sync")


@dataclass(frozen=True)
class _JsonAsk:
    """A JSON call's arguments as ``request_json`` took them, handed on whole to the cache
    path and to the call itself rather than as the same eight parameters twice more."""

    method: str
    route: str
    payload: dict[str, Any] | None
    options: CallOptions
    required: tuple[str, ...]
    sink: Callable[[RequestRecord], None] | None
    fallback: tuple[str, str] | None
    watch: CallWatch | None


class CallRunner:
    """Runs calls for one client; shared by all its threads (holds no per-call state)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: Transport,
        limiter: LimiterProtocol,
        recorder: Recorder,
        clock: Clock,
        scope: _cancel.Scope,
        cache: ResponseCache | None,
    ) -> None:
        self._scope = scope
        self._base_url = base_url
        self._auth_header = f"Bearer {api_key}"
        self._secret = api_key  # scrubbed out of the URL an exception keeps
        self._limiter = limiter
        self._recorder = recorder
        self._clock = clock
        self._cache = cache
        self._attempts = Attempts(transport=transport, limiter=limiter, clock=clock)
        self._loop = RetryLoop(on_retry=_log_retry)

    @property
    def recorder(self) -> Recorder:
        return self._recorder

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
    ) -> Answer:
        """Send one request with retries; the decoded JSON answer with its head, through the
        response cache when there is one (POSTs only). ``sink`` also receives the call's
        record; ``fallback`` (the model left, and why) goes into it."""
        observer = _observe.OBSERVER
        watch = None
        if observer is not None and payload is not None:
            watch = observer.call_started(
                route, payload, self._base_url, False, self._limiter, self._secret
            )
        ask = _JsonAsk(method, route, payload, options, required, sink, fallback, watch)
        try:
            if self._cache is None or payload is None:
                return self._json(ask)
            return self._cached(ask, payload)
        except BaseException as exc:
            # Failed with no record (a body that cannot be sent, a wait on another thread's
            # identical call): the watch still ends. After a record, this is ignored.
            if watch is not None:
                watch.finished(None, None, exc)
            raise

    def _cached(self, ask: _JsonAsk, payload: dict[str, Any]) -> Answer:
        """A POST through the response cache: made here, or the answer of an identical call
        (made earlier, or by another thread now: no head of its own). ``payload`` is
        ``ask.payload``, known here not to be None."""
        assert self._cache is not None
        options, route = ask.options, ask.route
        started = self._clock.monotonic()
        # The cache keeps bodies only; the head of an answer this thread fetched is its own.
        fetched: list[Answer] = []

        def lead() -> dict[str, Any]:
            # A caller that waited on another's flight and now leads has only what is left
            # of its budget, not a fresh one.
            budget = options.retry.total_timeout
            spent = self._clock.monotonic() - started
            own = options
            if budget is not None and spent > 0:
                if budget - spent <= 0:
                    raise APITimeoutError(
                        "the call's time budget ran out while it waited for "
                        "an identical call on another thread"
                    )
                own = options.with_retry(options.retry.replace(total_timeout=budget - spent))
            answer = self._json(replace(ask, options=own))
            fetched.append(answer)
            return answer.data

        try:
            data, hit = self._cache.get_or_call(
                ResponseCache.key(route, payload),
                lead,
                # A caller waiting on another thread's identical call waits no longer than its
                # own budget would let it wait for its own.
                timeout=options.retry.total_timeout,
            )
        except APIError as exc:
            if exc.request is NO_REQUEST:
                # It timed out waiting on another thread's call and sent nothing of its own:
                # its error names the request all the same, as every call's error does.
                req = self._request(ask.method, route, payload, options, "application/json")
                exc.request = req.snapshot
            raise
        if hit:
            model = payload.get("model")
            self._recorder.cache_hit(
                route,
                model if isinstance(model, str) else None,
                started,
                ask.sink,
                watch=ask.watch,
                answer=data,
            )
            return Answer(data)
        return fetched[-1] if fetched else Answer(data)

    def _json(self, ask: _JsonAsk) -> Answer:
        options, watch = ask.options, ask.watch
        req = self._request(ask.method, ask.route, ask.payload, options, "application/json")
        start = self._clock.monotonic()
        log = CallLog(
            ask.route, req.model, start, sink=ask.sink, fallback=ask.fallback, watch=watch
        )
        retry = RetryingCall(options.retry, self._clock, start, subject=req, watch=watch)
        result: Answer | None = None
        error: BaseException | None = None
        try:
            with _cancel.entered(self._scope) as scope:
                call = Call(req, options, retry, log, scope)
                result = self._loop.run(retry, lambda: self._attempts.json(call, ask.required))
            return result
        except BaseException as exc:  # KeyboardInterrupt mid-call still gets its record
            error = exc
            _failed(exc, req, log)
            raise
        finally:
            data = result.data if result is not None else None
            usage = data.get("usage") if data is not None else None
            self._recorder.finish(
                log,
                error=error,
                usage=usage if isinstance(usage, dict) else None,
                answer=data,
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
        observer = _observe.OBSERVER
        watch = None
        if observer is not None:
            watch = observer.call_started(
                route, payload, self._base_url, True, self._limiter, self._secret
            )
        try:
            req = self._request("POST", route, payload, options, "text/event-stream")
        except BaseException as exc:
            if watch is not None:
                watch.finished(None, None, exc)
            raise
        start = self._clock.monotonic()
        log = CallLog(route, req.model, start, fallback=fallback, watch=watch)
        retry = RetryingCall(options.retry, self._clock, start, subject=req, watch=watch)

        def finish(**outcome: Any) -> None:
            # The stream outlives this method: it writes the call's record when it ends.
            self._recorder.finish(log, **outcome)

        try:
            with _cancel.entered(self._scope) as scope:
                call = Call(req, options, retry, log, scope)
                return self._loop.run(retry, lambda: self._attempts.stream(call, kind, finish))
        except BaseException as exc:
            _failed(exc, req, log)
            self._recorder.finish(log, error=exc)
            raise

    def _request(
        self,
        method: str,
        route: str,
        payload: dict[str, Any] | None,
        options: CallOptions,
        accept: str,
    ) -> Request:
        return build_request(
            method,
            self._base_url,
            route,
            payload,
            options,
            auth_header=self._auth_header,
            secret=self._secret,
            accept=accept,
            limiter=self._limiter,
        )


def _log_retry(call: RetryingCall, exc: BaseException, wait: float) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        req = call.subject
        logger.debug(
            "retrying %s model=%s after attempt %d (%s, request_id=%s): waiting %.3fs: %s",
            getattr(req, "route", None),
            getattr(req, "model", None),
            call.tries,
            type(exc).__name__,
            getattr(exc, "request_id", None),
            wait,
            exc,
        )


def _failed(exc: BaseException, req: Request, log: CallLog) -> None:
    """A call that raised: its error names the request (openai-python's ``e.request``) and
    says how many attempts were sent (not those our own limiter held back), and a give-up is
    logged."""
    if not isinstance(exc, APIError):
        return
    exc.request = req.snapshot
    exc.attempts = len(log.statuses)
    if exc.giveup_reason:
        logger.warning(
            "giving up on %s model=%s after %s: %s",
            req.route,
            req.model,
            attempts(exc.attempts),
            exc,
        )
