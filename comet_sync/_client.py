"""The client: configuration, lifecycle, and the pieces every call shares."""

from __future__ import annotations

import contextvars
import dataclasses
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Callable, NoReturn, SupportsIndex, TypeVar, cast

from . import _cancel
from ._call.cache import ResponseCache
from ._call.door import CallDefaults, Door
from ._call.engine import CallRunner
from ._call.fallback import Fallbacks, check_fallbacks
from ._clock import Clock
from ._config import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_WAIT,
    DEFAULT_TOTAL_TIMEOUT,
    DEFAULT_WORKERS_PER_SLOT,
    ClientConfig,
    PerModel,
    RateControl,
    RetryConfig,
    Timeout,
    TimeoutArg,
    check_headers,
    resolve_api_key,
    resolve_base_url,
)
from ._exceptions import (
    ClientClosedError,
    InvalidArgumentError,
    KeyFamily,
    KeyRing,
)
from ._http.transport import Transport
from ._keyed import KeyedRuntimes
from ._metrics import Metrics
from ._params import NOT_GIVEN, NotGiven, check_query, is_not_given
from ._rate.limiter import Limiter
from ._rate.protocol import LimiterProtocol
from ._records import Recorder, RequestRecord
from ._resources.beta import Beta
from ._resources.chat import Chat
from ._resources.chat_raw import ClientWithRawResponse, ClientWithStreamingResponse
from ._resources.embeddings import Embeddings
from ._resources.models import DEFAULT_MODELS_TTL, Models, ModelsCache
from ._resources.responses import Responses
from ._version import __version__

__all__ = ["CometClient"]

# Every live client, so that a forked child can rebuild each one's connections and locks.
_CLIENTS: weakref.WeakSet[CometClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX: gunicorn --preload, multiprocessing's fork
    os.register_at_fork(after_in_child=_after_fork_in_child)

T = TypeVar("T")
# Executors kept at once, one per model; past that the least recently used one is let go.
MAX_EXECUTORS = 32
# How long close() waits for calls it has cut to let go of their sockets.
CLOSE_SETTLE_SECONDS = 0.5


class CometClient:
    """A synchronous CometAPI client, meant to be shared by every thread of a process.

    >>> from comet_sync import CometClient
    >>> with CometClient() as client:            # key from COMETAPI_KEY
    ...     reply = client.chat.completions.create(
    ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello."}])
    ...     print(reply.choices[0].message.content)

    Rate control (on by default; ``rate_control=RateControl(...)`` to change it): each model
    gets its own lane. A 429 delays the request that got it; the pace a server accepts is found
    from its answers, or taken from its rate-limit headers, or from ``rpm``/``tpm`` (a number
    for each model, or a dict by model); retries that heal are never refused, and in an
    outage sends are deferred, not failed. ``submit``/``map`` run each model's jobs on its own
    executor, so one model's pace never holds up another's jobs.

    Arguments (every one optional):

    * ``api_key``: else ``COMETAPI_KEY`` (or ``COMET_API_KEY``, ``COMETAPI_API_KEY``);
      printable ASCII, refused before anything is sent otherwise. ``base_url``: else
      ``COMETAPI_BASE_URL``, else ``https://api.cometapi.com/v1``; no user name or password.
    * ``max_concurrency`` (8): requests of this client on the wire at once, at most.
      ``max_workers`` (4 times max_concurrency): threads of each model's executor for
      ``submit``/``map``.
    * ``max_retries`` (5), ``max_wait`` (30 s, the cap on one wait), ``backoff_base`` (0.5 s,
      the first full-jitter window), ``total_timeout`` (900 s, the whole call, waits
      included; None for none): see :class:`RetryConfig`.
    * ``timeout``: per attempt, a :class:`Timeout` (connect 10 s, read 600 s), seconds, a
      (connect, read) pair, None for none, or httpx's ``Timeout``.
    * ``max_response_bytes`` (128 MiB), ``max_event_bytes`` (16 MiB): caps on a decoded
      answer and on one streamed event.
    * ``rpm``, ``tpm``, ``rate_control``: limits you know, and how the rest are found (see
      :class:`RateControl`). ``limiter``: a shared limiter such as ``RedisLimiter``.
    * ``cache``: a :class:`ResponseCache` for identical requests. ``models_ttl`` (600 s):
      how long ``models.list()`` is cached.
    * ``on_request``: called with each call's :class:`RequestRecord` (see below).
    * ``default_headers``, ``default_query``: sent with every call. ``fallbacks``: models a
      call moves on to (a list, or a dict by model; see ``chat.completions.create``).
    * ``clock``: a :class:`Clock` (time, sleep and chance), for tests; or its parts as
      ``clock`` (monotonic seconds), ``sleep`` and ``random``. The limiter, the models cache
      and the retry loop all use it.

    Thread-safety contract:

    * One client serves any number of threads at once: ``chat.completions.create`` may be
      called directly from web-server threads while ``submit`` and ``map`` run on the
      client's own executor. Build it once per process, not per request.
    * Shared and safe: the ``requests`` session and its urllib3 pool (built once, never
      changed afterwards); the limiter (one lock guards its in-flight count, the queue of
      callers waiting for a slot and every model lane: limits, pacers, holds, retry quota);
      ``metrics`` (one lock guards its counters); the response cache and the models cache
      (each behind its own lock, never held across the HTTP call); the executor (created
      per model, under ``_lock``). Configuration is frozen. Per-call state lives on the calling
      thread.
    * No lock is ever held across network I/O or a sleep: locks guard counters only.
    * ``close()`` may be called from any thread, once or more; calls made after it raise
      :class:`ClientClosedError`, and so do calls it finds waiting or (after its ``grace``)
      on the wire: it returns within about a second plus the grace.
    * At most ``max_concurrency`` requests are in flight at once, whichever threads send
      them, and fewer while 429s say the server wants less (see ``RateControl``);
      ``submit``/``map`` run each model's jobs on at most ``max_workers`` threads.
    * ``on_request`` is called on the thread that made the call, after it; it must be
      thread-safe, and it holds that thread (in ``submit``/``map``, a worker) while it runs:
      keep it quick and hand slow work to a thread of your own.
    * Fork-safe: a child process forked from one holding a client (gunicorn ``--preload``,
      multiprocessing) gets fresh connections, locks, limiter, metrics and executor
      automatically; nothing is shared across the fork.
    """

    config: ClientConfig
    rate_control: RateControl
    cache: ResponseCache | None
    chat: Chat
    beta: Beta
    embeddings: Embeddings
    responses: Responses
    models: Models
    metrics: Metrics

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_workers: int | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_wait: float = DEFAULT_MAX_WAIT,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        timeout: TimeoutArg = Timeout(),  # noqa: B008  (frozen, so safe as a default)
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        rpm: PerModel = None,
        tpm: PerModel = None,
        rate_control: RateControl | None = None,
        cache: ResponseCache | None = None,
        limiter: LimiterProtocol | None = None,
        models_ttl: float = DEFAULT_MODELS_TTL,
        on_request: Callable[[RequestRecord], None] | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        fallbacks: Fallbacks = None,
        clock: Clock | Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        key = resolve_api_key(api_key)
        # The key, scrubbing with it those of this client's views with another api_key (their
        # runtimes join this family when built).
        self._api_key: KeyRing = KeyRing(key, KeyFamily(key))
        workers = max_workers
        if workers is None:
            # (a wrong max_concurrency is reported by ClientConfig, naming it)
            workers = (
                max_concurrency * DEFAULT_WORKERS_PER_SLOT
                if isinstance(max_concurrency, int)
                else 1
            )
        self.config = ClientConfig(
            base_url=resolve_base_url(base_url),
            max_concurrency=max_concurrency,
            max_workers=workers,
            timeout=Timeout.coerce(timeout),
            retry=RetryConfig(
                max_retries=max_retries,
                max_wait=max_wait,
                backoff_base=backoff_base,
                total_timeout=total_timeout,
            ),
        )
        for name, cap in (
            ("max_response_bytes", max_response_bytes),
            ("max_event_bytes", max_event_bytes),
        ):
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise InvalidArgumentError(name, f"expected an int >= 1, got {cap!r}")
        self._max_response_bytes = max_response_bytes
        self._max_event_bytes = max_event_bytes
        # Sent with every call (openai-python's default_headers / default_query); a call's
        # extra_headers / extra_query win.
        self._default_headers = (
            check_headers(default_headers, "default_headers") if default_headers is not None else {}
        )
        self._default_query = (
            check_query(default_query, "default_query") if default_query is not None else {}
        )
        # Models a call moves on to when its own is unavailable (see _call/fallback.py): a list
        # for every model, or a dict by model ("*" for the others).
        if isinstance(fallbacks, Mapping):
            for name, chain in fallbacks.items():
                check_fallbacks(chain, f"fallbacks[{name!r}]")
        else:
            check_fallbacks(fallbacks)
        self._fallbacks: Fallbacks = fallbacks
        if on_request is not None and not callable(on_request):
            raise InvalidArgumentError("on_request", "expected a callable taking a RequestRecord")
        if isinstance(clock, Clock):
            if sleep is not None or random is not None:
                raise InvalidArgumentError("clock", "a Clock carries its own sleep and random")
            clock_ = clock
        else:
            clock_ = Clock(
                monotonic=clock or time.monotonic,
                # Our own sleeps end early when the client closes (or the map stops); a sleep
                # the caller injects is theirs to make interruptible.
                sleep=sleep or _cancel.interruptible_sleep,
                random=random,
            )
        control = rate_control if rate_control is not None else RateControl()
        if not isinstance(control, RateControl):
            raise InvalidArgumentError("rate_control", "expected a comet_sync.RateControl")
        if rpm is not None or tpm is not None:
            control = dataclasses.replace(
                control,
                rpm=rpm if rpm is not None else control.rpm,
                tpm=tpm if tpm is not None else control.tpm,
            )
        self.rate_control = control
        if cache is not None and not isinstance(cache, ResponseCache):
            raise InvalidArgumentError("cache", "expected a comet_sync.ResponseCache")
        self.cache = cache
        self._clock = clock_
        self._on_request = on_request
        self._models_ttl = models_ttl
        self._closed = False
        if limiter is not None and not callable(getattr(limiter, "acquire", None)):
            raise InvalidArgumentError("limiter", "expected a limiter such as RedisLimiter")
        if limiter is not None and (rpm is not None or tpm is not None):
            # Silently dropping them would be worse than refusing: a shared limiter is built
            # with its own limits, which every process sharing it must agree on.
            raise InvalidArgumentError(
                "rpm" if rpm is not None else "tpm",
                "give the limits to the shared limiter you pass as limiter=, not to the client",
            )
        self._shared_limiter: LimiterProtocol | None = limiter
        if limiter is not None:
            limiter.bind(clock=clock_, max_hold=max_wait)
        # What a view with another key or base URL builds its own runtime from (see
        # with_options): every setting but the key, the URL, the limiter and the cache, which
        # belong to one account at one endpoint.
        self._settings: dict[str, Any] = {
            "max_concurrency": max_concurrency,
            "max_workers": max_workers,
            "max_retries": max_retries,
            "max_wait": max_wait,
            "backoff_base": backoff_base,
            "timeout": self.config.timeout,
            "total_timeout": total_timeout,
            "max_response_bytes": max_response_bytes,
            "max_event_bytes": max_event_bytes,
            "rate_control": control,
            "models_ttl": models_ttl,
            "on_request": on_request,
            "default_headers": self._default_headers,
            "default_query": self._default_query,
            "fallbacks": fallbacks,
            "clock": clock_,
        }
        # Runtimes of views with another key or base URL, by (key digest, URL); see keyed.py.
        self._keyed = KeyedRuntimes()
        self._owner: CometClient | None = None
        self._build_runtime()
        _CLIENTS.add(self)
        self._build_resources()

    def _build_runtime(self) -> None:
        """Build what holds sockets, locks and threads: at construction, and again in a child
        process after a fork, which must not share any of them with its parent."""
        # Every call of this client runs in this scope: close() stops it.
        self._scope = _cancel.Scope(what="the client")
        # A shared limiter (contrib.redis) replaces the process's own.
        self._limiter: LimiterProtocol = self._shared_limiter or Limiter(
            self.config.max_concurrency,
            self.rate_control,
            clock=self._clock,
            max_hold=self.config.retry.max_wait,
        )
        self.metrics = Metrics(limiter_state=self._limiter.state)
        self._transport = Transport(
            pool_size=self.config.max_concurrency,
            user_agent=f"comet-sync/{__version__}",
            base_url=self.config.base_url,
            secret=self._api_key,
        )
        self._runner = CallRunner(
            base_url=self.config.base_url,
            api_key=self._api_key,
            transport=self._transport,
            limiter=self._limiter,
            recorder=Recorder(self.metrics, self._clock, self._on_request),
            clock=self._clock,
            scope=self._scope,
            cache=self.cache,
        )
        self._lock = threading.Lock()  # guards _executors and _closed
        # One executor per model, so that jobs waiting for one model's pace never occupy the
        # workers another model's jobs need (least recently used first out).
        self._executors: OrderedDict[str | None, ThreadPoolExecutor] = OrderedDict()
        self._models_cache = ModelsCache(self._models_ttl, self._clock.monotonic)
        if self.cache is not None:
            self.cache._reset_locks()

    def _build_resources(self) -> None:
        """What a user calls, over this client's own door (or a view's, with the view's
        defaults). Built here only: a view once reused its parent's ``models``, which sent
        the parent's headers. The door reads its runtime live, so a fork needs no rebuild."""
        self._door = Door(
            _Runtime(self),
            CallDefaults(
                timeout=self.config.timeout,
                retry=self.config.retry,
                headers=self._default_headers,
                query=self._default_query,
                max_response_bytes=self._max_response_bytes,
                max_event_bytes=self._max_event_bytes,
                fallbacks=self._fallbacks,
            ),
        )
        self.chat = Chat(self._door)
        self.beta = Beta(self.chat)
        self.embeddings = Embeddings(self._door)
        self.responses = Responses(self._door)
        # The catalogues are the runtime's, read live: a forked child builds new ones.
        self.models = Models(self._door, lambda: self._models_cache)

    def _after_fork_in_child(self) -> None:
        # The parent's sockets, locks and executor threads are not ours: leave them (closing
        # the sockets here would be harmless to the parent but is not needed) and start anew.
        # Metrics and limiter state start fresh too: they describe this process's calls.
        if not self._closed:
            self._keyed.after_fork()
            if self._shared_limiter is not None:
                self._shared_limiter.after_fork()
            self._build_runtime()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, grace: float = 0.0) -> None:
        """Stop, and release every thread and connection. Returns within about a second, plus
        ``grace``.

        From now on nothing new is sent: jobs submitted but not started are cancelled (their
        futures say so), and calls waiting for a slot, for the pace or before a retry raise
        :class:`ClientClosedError`. Calls on the wire get ``grace`` seconds to finish, then
        are cut and raise it too. To keep results, wait for your futures before closing.
        """
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
            raise InvalidArgumentError("grace", f"expected seconds >= 0, got {grace!r}")
        # This client and the runtimes of its views with another key or URL, each stopped
        # first and then waited for together: one after the other, 64 of them would take 64
        # graces.
        closing = [c for c in (self, *self._keyed.take_all()) if c._stop()]
        # Outside the lock: waiting for calls in flight is waiting on I/O.
        if grace > 0:
            _wait_idle(closing, grace)
        for client in closing:
            client._scope.abandon()
        # The cut calls raise at once; give their threads a moment to let go of the sockets.
        _wait_idle(closing, CLOSE_SETTLE_SECONDS)
        for client in closing:
            client._transport.close()

    def _stop(self) -> bool:
        """Mark closed and stop everything not yet sent; False if it was closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            executors = list(self._executors.values())
            self._executors.clear()
        self._scope.stop()
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        return True

    @property
    def closed(self) -> bool:
        return self._closed or (self._owner is not None and self._owner._closed)

    @property
    def base_url(self) -> str:
        """Where calls go, ending in ``/`` as ``str(openai_client.base_url)`` does (a ``str``:
        we have no httpx, whose ``URL`` openai-python gives; ``httpx.URL(client.base_url)``
        makes one)."""
        return self.config.base_url + "/"

    @property
    def max_retries(self) -> int:
        """Retries after a call's first attempt (``config.retry.max_retries``)."""
        return self.config.retry.max_retries

    @property
    def timeout(self) -> Timeout:
        """Each attempt's timeouts, ``.connect`` and ``.read`` (None: none), however they were
        given (openai-python gives back what it was given: a number, or httpx's Timeout)."""
        return self.config.timeout

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # pickle, copy and deepcopy ask this first. A client is sockets, threads and locks, and
        # its key: refused before a byte is written (pickle.dump to a file streams, so a pickle
        # failing later, on a lock, would have written the key already).
        raise TypeError(
            "a CometClient holds connections, threads and its API key and cannot be copied or "
            "pickled: build one in each process, or use client.copy(...) / with_options(...)"
        )

    def __enter__(self) -> CometClient:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<CometClient {state} base_url={self.config.base_url!r} "
            f"max_concurrency={self.config.max_concurrency}>"
        )

    def with_options(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven | None = None,
        total_timeout: float | None = None,
        default_headers: Mapping[str, str] | None = None,
        set_default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        set_default_query: Mapping[str, str] | None = None,
    ) -> CometClient:
        """This client with other defaults (openai-python's ``with_options``, and ``copy``,
        which is the same method), on every resource (``chat``, ``responses``,
        ``embeddings``, ``models``). Headers and query parameters given in
        ``default_headers`` / ``default_query`` are added to this client's;
        ``set_default_headers`` / ``set_default_query`` replace them.

        With the same key and base URL it shares the connections, limiter, executors, cache
        and metrics, so it costs nothing to make per request. The models list is cached once
        for each set of headers and query parameters sent, so views that send the same
        share it.

        With another ``api_key`` or ``base_url`` it shares none of that: connections, limiter
        (the pace a server grants is per key and per endpoint), executors, metrics, models
        list and response cache (an answer bought with one key is not served to another) are
        its own, built once for each key and URL and reused by every view with them, from
        this client's settings (``on_request`` is called for its calls too; records hold no
        key). A client given a shared ``limiter=`` refuses: its limits belong to one key.

        Either way, closing a view closes the client it came from, and closing the client
        closes them all.

        >>> client.with_options(timeout=20, max_retries=1).chat.completions.create(...)
        >>> client.with_options(api_key=tenant_key).chat.completions.create(...)
        """
        if default_headers is not None and set_default_headers is not None:
            raise InvalidArgumentError(
                "set_default_headers", "give default_headers or set_default_headers, not both"
            )
        if default_query is not None and set_default_query is not None:
            raise InvalidArgumentError(
                "set_default_query", "give default_query or set_default_query, not both"
            )
        return _View(
            self._runtime_for(api_key, base_url),
            self,
            timeout=timeout,
            max_retries=None if is_not_given(max_retries) else cast("int | None", max_retries),
            total_timeout=total_timeout,
            default_headers=default_headers,
            set_default_headers=set_default_headers,
            default_query=default_query,
            set_default_query=set_default_query,
        )

    copy = with_options

    def _runtime_for(self, api_key: str | None, base_url: str | None) -> CometClient:
        """The client whose connections a view with this key and URL uses: this one's, or
        (another key or URL) one built for them and kept by the client that owns them all."""
        root = self._parent if isinstance(self, _View) else self
        owner = root._owner or root
        key = root._api_key if api_key is None else resolve_api_key(api_key)
        url = root.config.base_url if base_url is None else resolve_base_url(base_url)
        if key == root._api_key and url == root.config.base_url:
            return root
        if key == owner._api_key and url == owner.config.base_url:
            return owner
        if owner._shared_limiter is not None:
            raise InvalidArgumentError(
                "api_key" if key != owner._api_key else "base_url",
                "this client's shared limiter= holds the limits of its own key and endpoint: "
                "build another client, with its own limiter, for this one",
            )

        def build() -> CometClient:
            cache = owner.cache
            keyed = CometClient(
                api_key=key,
                base_url=url,
                cache=cache.empty_like() if cache is not None else None,
                **owner._settings,
            )
            keyed._owner = owner
            # One family of keys: each scrubs the others' out of its answers (a server may
            # echo the parent's key into a tenant's error, or the reverse).
            family = owner._api_key.family
            family.add(key)
            keyed._api_key.family = family
            return keyed

        owner._check_open()
        return owner._keyed.get_or_build(key, url, build)

    @property
    def with_raw_response(self) -> ClientWithRawResponse:
        """``client.with_raw_response.chat.completions.create(...)``: the same calls, each
        returning a ``RawResponse`` (``.status_code``, ``.headers``, ``.request_id``,
        ``.parse()``), as openai-python's."""
        return ClientWithRawResponse(self)

    @property
    def with_streaming_response(self) -> ClientWithStreamingResponse:
        """``with client.with_streaming_response.chat.completions.create(...) as response``:
        the same calls as context managers giving a ``RawResponse`` once the head has come
        (for a stream, ``response.parse()`` is the stream), as openai-python's."""
        return ClientWithStreamingResponse(self)

    # -- what the resources share ------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests of this client on the wire right now."""
        return self._limiter.in_use

    def _check_open(self) -> None:
        if self.closed:
            raise ClientClosedError("this CometClient is closed; create a new one")

    def _executor_for_submit(self, model: str | None = None) -> ThreadPoolExecutor:
        """The executor for ``model``'s jobs (``max_workers`` threads, created lazily)."""
        with self._lock:
            if self.closed:
                raise ClientClosedError("this CometClient is closed; create a new one")
            executor = self._executors.get(model)
            if executor is not None:
                self._executors.move_to_end(model)
                return executor
            executor = self._executors[model] = ThreadPoolExecutor(
                max_workers=self.config.max_workers, thread_name_prefix="comet_sync"
            )
            evicted = None
            if len(self._executors) > MAX_EXECUTORS:
                _, evicted = self._executors.popitem(last=False)
        if evicted is not None:
            # Its queued jobs still run; its threads end when they are done.
            evicted.shutdown(wait=False)
        return executor


class _View(CometClient):
    """What ``with_options`` returns: its own defaults, everything else its runtime's (the
    client it came from, or the one built for its key and URL), looked up live (so a view
    stays right after its runtime is rebuilt in a forked child)."""

    def __init__(
        self,
        runtime: CometClient,
        inherit: CometClient,
        *,
        timeout: TimeoutArg | NotGiven,
        max_retries: int | None,
        total_timeout: float | None,
        default_headers: Mapping[str, str] | None,
        set_default_headers: Mapping[str, str] | None,
        default_query: Mapping[str, str] | None,
        set_default_query: Mapping[str, str] | None,
    ) -> None:
        # No super().__init__(): a view builds nothing of its own. Its defaults start from
        # those of the client or view it was made from.
        self._parent: CometClient = runtime
        changes: dict[str, object] = {}
        if max_retries is not None:
            changes["max_retries"] = max_retries
        if total_timeout is not None:
            changes["total_timeout"] = total_timeout
        self.config = dataclasses.replace(
            inherit.config,
            base_url=runtime.config.base_url,
            timeout=inherit.config.timeout
            if is_not_given(timeout)
            else Timeout.coerce(cast(TimeoutArg, timeout)),
            retry=inherit.config.retry.replace(**changes) if changes else inherit.config.retry,
        )
        if set_default_headers is not None:
            self._default_headers = check_headers(set_default_headers, "set_default_headers")
        else:
            self._default_headers = {
                **inherit._default_headers,
                **(check_headers(default_headers, "default_headers") if default_headers else {}),
            }
        if set_default_query is not None:
            self._default_query = check_query(set_default_query, "set_default_query")
        else:
            self._default_query = {
                **inherit._default_query,
                **(check_query(default_query, "default_query") if default_query else {}),
            }
        self._build_resources()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parent, name)

    @property
    def closed(self) -> bool:
        return self._parent.closed

    def close(self, grace: float = 0.0) -> None:
        (self._parent._owner or self._parent).close(grace)

    def __repr__(self) -> str:
        return f"<CometClient view of {self._parent!r}>"


class _Runtime:
    """What a door runs on (see ``_call/door.py``): the client's engine, clock, executors and
    scope, read on every call (a forked child rebuilds them; a view reads its runtime's)."""

    def __init__(self, client: CometClient) -> None:
        self._client = client

    @property
    def runner(self) -> CallRunner:
        return self._client._runner

    @property
    def clock(self) -> Clock:
        return self._client._clock

    @property
    def max_workers(self) -> int:
        return self._client.config.max_workers

    def check_open(self) -> None:
        self._client._check_open()

    def scope(self, what: str) -> _cancel.Scope:
        return self._client._scope.child(what)

    def submit(self, model: str | None, fn: Callable[..., T], *args: Any) -> Future[T]:
        # The caller's context (a ``deadline`` block) goes with the job.
        context = contextvars.copy_context()
        return self._client._executor_for_submit(model).submit(context.run, fn, *args)


def _wait_idle(clients: list[CometClient], seconds: float) -> None:
    """Wait until the calls of every client have ended, or ``seconds`` have passed."""
    end = time.monotonic() + seconds
    for client in clients:
        client._transport.watchdog.wait_idle(max(0.0, end - time.monotonic()))
