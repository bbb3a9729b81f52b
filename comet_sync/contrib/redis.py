"""Limits shared by every process and host of an application, on Redis
(``pip install 'comet-sync[redis]'``).

>>> from comet_sync import CometClient
>>> from comet_sync.contrib.redis import RedisLimiter
>>> client = CometClient(limiter=RedisLimiter.from_url("redis://localhost:6379/0",
...                                                    namespace="my-app", max_concurrency=8))

Every client built with the same namespace shares:

* **the concurrency limit**: a slot is a lease (a member of a sorted set scored by its expiry)
  renewed by a background thread while the call or stream runs, so a killed worker frees its
  slots within ``lease_ttl`` and nothing leaks (the renewer outlives any error: a lease that
  lapsed while its call ran would be granted twice);
* **a rate limit** (``rpm``): GCRA, checked and reserved in the same atomic script, on Redis's
  clock (``TIME``), never the hosts';
* **adaptive state**: a 429 that shows a concurrency cap cuts the shared limit by the local
  limiter's rule (``_rate/cap.py``, judged on the shared in-flight levels this process's
  requests were sent at: down to the level its successes typically had; a 429 about rate is
  left to each process's pacing), once per burst (a 429 on a request sent before the last cut
  is not news), and successes grow it back; each client reads it as at most its own
  ``max_concurrency``, and an unused namespace forgets it after ``ADAPTIVE_STATE_TTL``. A
  long ``Retry-After`` (``LONG_RETRY_AFTER`` or more, clamped to the client's ``max_wait``)
  pauses every process, each for at most its own ``max_wait``: a pause delays calls, and it
  fails only those whose budget is shorter than that.

* **the pace found from 429s, per model** (``_redis_pace.py``): found by any process in the
  quota's units (its share of the sends scaled up), it spaces every process's sends of the
  model (GCRA on Redis's clock, beside ``rpm``); a process that starts later is paced by it
  from its first request.

Each process also keeps its own local :class:`~comet_sync._rate.limiter.Limiter` in front of the
shared lease: the per-model lanes (holds on the server's word, paces told by rate headers,
the retry quota and the adaptive throttle) act per process; the concurrency cap, ``rpm``,
pauses and the found pace are shared.

The namespace's keys are not trusted: what the scripts (``_redis_scripts``) find there that we
never write is deleted or ignored, and every key they write has a TTL.

One round trip per acquire (one Lua script) and one per release in the common case. When the
limit is full the caller sleeps a short, jittered interval before asking again; a rate wait
is slept as Redis says, a pause as long as it lasts or this client honours it.

Failure policy: Redis calls use short socket timeouts. With ``failure="open"`` (default) a
Redis that does not answer, or refuses (a read-only replica, say), leaves only the local limiter
in force, logged once per outage; with ``failure="closed"`` a call waits for Redis to come back
(asking again with jittered, growing waits) for as long as its own time budget allows
(``max_wait`` when it has none), and only then is refused with ``LimiterUnavailableError``: a
Redis restart delays calls, it does not fail them.

Thread safety: ``_lock`` guards the table of held leases; no lock is held across a Redis call.
A forked child gets a fresh connection pool, renewal thread and fallback.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
import warnings
from typing import TYPE_CHECKING, Any

from .._cancel import Scope, interruptible_sleep
from .._clock import Clock
from .._config import RateControl
from .._exceptions import InvalidArgumentError, LimiterTimeoutError, LimiterUnavailableError
from .._http.headers import ServerWord
from .._rate.cap import ConcurrencyCap
from .._rate.limiter import LONG_RETRY_AFTER, Limiter, Permit
from .._rate.protocol import LimiterProtocol, LimiterState
from ._errors import require
from ._redis_pace import SharedPaceBoard
from ._redis_scripts import ACQUIRE, PUBLISH_PACE, RELEASE, RENEW

_redis = require("redis", "redis")

__all__ = ["LimiterUnavailableError", "RedisLimiter"]

logger: logging.Logger = logging.getLogger("comet_sync")

# A killed worker's slots come back within this long; leases are renewed at a third of it.
DEFAULT_LEASE_TTL = 10.0
# A dead Redis must not hang a request: each call gives up after this long.
DEFAULT_SOCKET_TIMEOUT = 0.25
# While the shared limit is full, ask again after about this long (jittered).
FULL_RETRY_INTERVAL = 0.02
# failure="closed" asks a silent Redis again after waits growing from this, to at most the
# cap, jittered: a restart takes a second or two, and a thousand waiting calls must not hammer
# it the moment it is back.
UNAVAILABLE_FIRST_WAIT = 0.1
UNAVAILABLE_MAX_WAIT = 1.0
# Longer waits are sent to Redis as this many ms: max_wait may be infinite, Redis's arguments
# may not (a pause of 31 years is honoured as long as one of infinity).
LONGEST_MS = 10**12
# The shared limit and the time of its last cut are forgotten once nobody has used the namespace
# for this long: a namespace back in use starts again from max_concurrency, as a new process
# does.
ADAPTIVE_STATE_TTL = 600.0


class RedisLimiter:
    """A limiter shared through Redis by every client with the same ``namespace``."""

    def __init__(
        self,
        redis_client: Any,
        *,
        namespace: str,
        max_concurrency: int = 8,
        rpm: float | None = None,
        burst_seconds: float = 0.1,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        decrease: float | None = None,
        failure: str = "open",
        rate_control: RateControl | None = None,
    ) -> None:
        if failure not in ("open", "closed"):
            raise InvalidArgumentError("failure", f"expected 'open' or 'closed', got {failure!r}")
        if (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise InvalidArgumentError(
                "max_concurrency", f"expected an int >= 1, got {max_concurrency!r}"
            )
        # Each is sent to Redis as whole milliseconds or divides one: a NaN, an infinity or a
        # value under a millisecond would surface later, inside acquire or the renewer thread,
        # as a ValueError or OverflowError, or as a lease that lapses at once.
        if rpm is not None:
            _seconds("rpm", rpm, "a finite number of requests per minute > 0", lowest=0.0)
        _seconds("burst_seconds", burst_seconds, "a finite number of seconds > 0", lowest=0.0)
        _seconds("lease_ttl", lease_ttl, "a finite number of seconds >= 0.001", lowest=0.001)
        self._redis = redis_client
        self.namespace = namespace
        self.max_concurrency = max_concurrency
        self.rpm = rpm
        self._interval_ms = int(60_000 / rpm) if rpm else 0
        self._burst_ms = int(max(1.0, (rpm or 0) / 60 * burst_seconds) * self._interval_ms)
        self.lease_ttl = lease_ttl
        if decrease is not None:
            # The shared limit was cut to limit x decrease on any 429; it is now cut by the
            # local limiter's rule (issue 22), which has no factor. Accepted one release.
            warnings.warn(
                "RedisLimiter(decrease=) is ignored: a 429 that shows a concurrency cap cuts "
                "the shared limit by the same rule as the local limiter (to the in-flight "
                "level successes typically had)",
                DeprecationWarning,
                stacklevel=2,
            )
        self.failure = failure
        self._control = rate_control or RateControl()
        # Until the client binds its own (see bind): the system's, with a sleep close() wakes.
        self._clock = Clock(sleep=interruptible_sleep)
        self._max_hold = 30.0
        ns = namespace
        self._keys = [f"{ns}:leases", f"{ns}:limit", f"{ns}:lastcut", f"{ns}:cooldown", f"{ns}:tat"]
        self._start_process_state()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        **kwargs: Any,
    ) -> RedisLimiter:
        _seconds("socket_timeout", socket_timeout, "a finite number of seconds > 0", lowest=0.0)
        try:
            client = _redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        except ValueError as exc:
            # redis-py's words name the part that is wrong (the scheme, the port), never the
            # URL itself, which may carry a password.
            raise InvalidArgumentError("url", f"not a Redis URL: {exc}") from None
        return cls(client, namespace=namespace, **kwargs)

    def _start_process_state(self) -> None:
        self._acquire_script = self._redis.register_script(ACQUIRE)
        self._release_script = self._redis.register_script(RELEASE)
        self._renew_script = self._redis.register_script(RENEW)
        self._pace = SharedPaceBoard(
            namespace=self.namespace,
            script=self._redis.register_script(PUBLISH_PACE),
            ttl=ADAPTIVE_STATE_TTL,
            told=self.rpm is not None,
            monotonic=lambda: self._clock.monotonic(),
            adopt=lambda model, rate: self._local().adopt_pace(model, rate),
            on_error=self._unavailable,
        )
        self._lock = threading.Lock()  # guards _held, _fallback, _down, _cap
        self._held: dict[str, float] = {}
        # This process's evidence about the shared limit: the shared levels its requests were
        # sent at, judged as the local limiter judges a lane's (its own limit is unused).
        self._cap = ConcurrencyCap(self.max_concurrency, initial=self.max_concurrency)
        self._fallback: Limiter | None = None
        self._down = False
        self._pause = _SharedPause()
        self._shared_limit = self.max_concurrency
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_forever, daemon=True, name="comet_sync-lease-renewer"
        )
        self._renewer.start()

    def bind(self, *, clock: Clock, max_hold: float) -> None:
        """Called by the client: every wait (local or shared) is timed, drawn and slept on the
        client's clock, and no pause lasts longer than the client's ``max_wait``."""
        self._clock = clock
        self._max_hold = max_hold
        with self._lock:
            self._fallback = None  # rebuilt with the client's clock

    def after_fork(self) -> None:
        # redis-py rebuilds its pool in a new process by itself; our thread and locks we redo.
        self._start_process_state()

    # -- the limiter interface used by the client ---------------------------------------------

    def paces_tokens(self, model: str | None) -> bool:
        return self._local().paces_tokens(model)

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._held)

    @property
    def limit(self) -> int:
        return self._shared_limit

    def acquire(
        self,
        model: str | None = None,
        *,
        cost: float = 0.0,
        timeout: float | None = None,
        retry_cost: float = 0.0,
        scope: Scope | None = None,
    ) -> _RedisPermit:
        """This process's lane first (holds, throttle, pace), then a shared lease. Raises
        only comet_sync's errors: :class:`LimiterTimeoutError` if that would take longer than
        ``timeout``, :class:`LimiterUnavailableError` (``failure="closed"``) if Redis did not
        answer within it, and what a stopped ``scope`` raises once it stops; no redis-py
        exception leaves here."""
        now = self._clock.monotonic
        started = now()
        local = self._local().acquire(
            model, cost=cost, timeout=timeout, retry_cost=retry_cost, scope=scope
        )
        remaining = None if timeout is None else max(0.0, timeout - (now() - started))
        try:
            return self._lease(local, remaining, scope)
        except BaseException:
            local.release()
            raise

    def _lease(self, local: Permit, timeout: float | None, scope: Scope | None) -> _RedisPermit:
        clock = self._clock
        started = clock.monotonic()
        deadline = None if timeout is None else started + timeout
        lease = uuid.uuid4().hex
        unavailable = 0
        max_hold_ms = _ms(self._max_hold)
        keys = self._keys + self._pace.keys(local.model)
        paced = False  # the shared pace made this send wait
        while True:
            # A hold this process began while the send waited here applies to it too.
            self._local().wait_out_hold(local, deadline)
            try:
                granted, value, now_ms, limit, pause_end, pace, recent = self._acquire_script(
                    keys=keys,
                    args=[
                        lease,
                        int(self.lease_ttl * 1000),
                        self.max_concurrency,
                        self._interval_ms,
                        self._burst_ms,
                        max_hold_ms,
                        self._pause.passed(),
                        int(ADAPTIVE_STATE_TTL * 1000),
                    ],
                )
            except _redis.exceptions.RedisError as exc:
                # Not only a silent Redis: a read-only replica, a refused script, an ACL.
                self._unavailable(exc)
                if self.failure == "open":
                    return _RedisPermit(self, None, local, sent_at_ms=0, in_flight=0)
                # Closed: wait for Redis within the call's budget, then refuse.
                wait = min(UNAVAILABLE_MAX_WAIT, UNAVAILABLE_FIRST_WAIT * 2**unavailable)
                wait *= 0.5 + clock.random()
                unavailable += 1
                end = deadline if deadline is not None else started + self._max_hold
                if clock.monotonic() + wait > end:
                    raise LimiterUnavailableError(
                        f"the shared limiter (Redis, namespace {self.namespace!r}) "
                        f"{_what_failed(exc)} for {clock.monotonic() - started:.3g}s, all this "
                        f"call's budget allowed"
                    ) from exc
                _sleep(clock, wait, scope)
                continue
            self._recovered()
            shared_pace = float(pace)
            if self._pace.taken(local.model, shared_pace):
                # Another process's pace: ours from now on (this send already waited for it).
                self._local().adopt_pace(local.model, shared_pace)
            if granted:
                self._shared_limit = int(limit)
                with self._lock:
                    self._held[lease] = clock.monotonic()
                self._pace.granted(local.model, int(recent), lease)
                if paced:
                    local.paced = True  # the pace held it back: a success grows the pace
                return _RedisPermit(
                    self, lease, local, sent_at_ms=int(now_ms), in_flight=int(value)
                )
            if pause_end:
                # Another client's pause is honoured for this client's own max_wait at most.
                left = self._pause.left(int(pause_end), int(now_ms), max_hold_ms) / 1000
                if left <= 0:
                    continue  # honoured all it will be: ask again past it
                # Everyone paused comes back spread over a tenth of it, not in one herd.
                wait = left + clock.random() * min(1.0, 0.1 * left)
                held = "a shared pause"
            elif value < 0:
                # Full: ask again soon, jittered so waiting processes do not ask in step.
                wait = FULL_RETRY_INTERVAL * (0.5 + clock.random())
                held = "a shared slot"
            else:
                wait = value / 1000 * (1 + 0.1 * clock.random())
                held = "the shared pace" if shared_pace > 0 else "the shared rpm"
                paced = shared_pace > 0
            if deadline is not None and clock.monotonic() + wait > deadline:
                raise LimiterTimeoutError(
                    f"the call's time budget ended while it waited for {held} "
                    f"(Redis namespace {self.namespace!r})",
                    held_by=held,
                )
            _sleep(clock, wait, scope)

    def state(self) -> LimiterState:
        local = self._local().state()
        cooling = 0.0
        try:
            ttl_ms = self._redis.pttl(self._keys[3])
            cooling = max(0.0, ttl_ms / 1000) if ttl_ms and ttl_ms > 0 else 0.0
        except _redis.exceptions.RedisError:
            pass  # a snapshot without the shared pause; acquire reports the outage
        return LimiterState(
            max_concurrency=self.max_concurrency,
            concurrency_limit=self._shared_limit,
            in_flight=self.in_use,
            learned_rate=local.learned_rate,
            rpm=self.rpm,
            tpm=None,
            held_for=max(cooling, local.held_for),
            holds=local.holds,
            cuts=local.cuts,
            retry_tokens=local.retry_tokens,
            deferred=local.deferred,
            models=local.models,
        )

    # -- internals ---------------------------------------------------------------------------

    def _release(
        self, permit: _RedisPermit, status: int | None, throttled: bool, retry_after: float | None
    ) -> None:
        if permit.lease is None:
            return  # Redis was down when it was sent: only the local limiter held it
        ok = status is not None and 200 <= status < 300
        cut_to = 0  # no cut
        with self._lock:
            self._held.pop(permit.lease, None)
            # The shared level at send stands for the level answered at too: the count when
            # the answer came is not known here without another round trip to Redis.
            if throttled and self._control.adaptive:
                typical = self._cap.judge(permit.in_flight)
                if typical is not None:
                    cut_to = int(ConcurrencyCap.cut_to(self.max_concurrency, typical))
            elif ok:
                now = self._clock.monotonic()
                self._cap.note_success(permit.in_flight, permit.local.sent_at, now)
        outcome = 2 if throttled else (1 if ok else 0)
        # Only a long Retry-After pauses every process; a short one delays its own request.
        pause = retry_after if retry_after is not None and retry_after >= LONG_RETRY_AFTER else 0
        try:
            limit = self._release_script(
                keys=[*self._keys[:4], self._pace.keys(permit.local.model)[2]],
                args=[
                    permit.lease,
                    outcome,
                    permit.sent_at_ms,
                    _ms(pause),
                    cut_to,
                    self.max_concurrency,
                    permit.in_flight,
                    _ms(self._max_hold),
                    int(ADAPTIVE_STATE_TTL * 1000),
                ],
            )
            self._shared_limit = max(1, int(float(limit)))
        except _redis.exceptions.RedisError:
            pass  # the lease expires by itself within lease_ttl

    def _renew_forever(self) -> None:
        failing = False  # logged once per run of failures, on this thread only
        while not self._stop.wait(self.lease_ttl / 3):
            with self._lock:
                leases = list(self._held)
            if not leases:
                continue
            try:
                self._renew_script(keys=self._keys[:1], args=[int(self.lease_ttl * 1000), *leases])
            except Exception as exc:
                # Whatever the error, the thread lives on: once it is gone every lease of this
                # process lapses while its call runs, and its slot is granted a second time.
                if not failing:
                    logger.warning(
                        "Redis limiter %s: could not renew %d leases (%s: %s); trying again "
                        "every %.3gs",
                        self.namespace,
                        len(leases),
                        type(exc).__name__,
                        exc,
                        self.lease_ttl / 3,
                    )
                failing = True
                continue
            if failing:
                logger.warning("Redis limiter %s: leases renewed again", self.namespace)
                failing = False

    def _local(self) -> Limiter:
        with self._lock:
            if self._fallback is None:
                self._fallback = Limiter(
                    self.max_concurrency,
                    self._control,
                    clock=self._clock,
                    max_hold=self._max_hold,
                    shared=self._pace,
                )
            return self._fallback

    def _unavailable(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._down
            self._down = True
        if first:
            logger.warning(
                "Redis limiter %s unavailable (%s): %s",
                self.namespace,
                type(exc).__name__,
                "only this process's own limiter applies"
                if self.failure == "open"
                else "calls wait for it within their budgets",
            )

    def _recovered(self) -> None:
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
            if was_down:
                logger.warning("Redis limiter %s is back", self.namespace)

    def close(self) -> None:
        self._stop.set()

    def __repr__(self) -> str:
        return f"<RedisLimiter namespace={self.namespace!r} pid={os.getpid()}>"


if TYPE_CHECKING:
    # mypy --strict checks here that RedisLimiter stays what a client accepts as limiter=.
    def _is_a_limiter(limiter: RedisLimiter) -> LimiterProtocol:
        return limiter


def _seconds(argument: str, value: object, expected: str, *, lowest: float) -> None:
    """Refuse ``value`` unless it is a finite real number above ``lowest`` (at least it when
    ``lowest`` is not 0)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value > 0 if lowest == 0.0 else value >= lowest)
    )
    if not ok:
        raise InvalidArgumentError(argument, f"expected {expected}, got {value!r}")


def _sleep(clock: Clock, seconds: float, scope: Scope | None) -> None:
    """A wait between asks of Redis, on the client's clock; a call whose scope stopped
    meanwhile asks no more (the clock's sleep may not watch the scope: an injected one)."""
    clock.sleep(seconds)
    if scope is not None:
        scope.raise_if_stopped()


def _ms(seconds: float) -> int:
    return int(min(seconds * 1000, LONGEST_MS))


def _what_failed(exc: BaseException) -> str:
    if isinstance(exc, (_redis.exceptions.ConnectionError, _redis.exceptions.TimeoutError)):
        return f"did not answer ({type(exc).__name__})"
    return f"refused ({type(exc).__name__}: {exc})"


class _SharedPause:
    """How long this client honours the namespace's pause. A pause is one client's reading of
    a server's long Retry-After, clamped to that client's ``max_wait``; this client clamps it
    to its own, as its local limiter clamps a hold: a 40 s pause from a client whose
    ``max_wait`` is 60 held every call of one whose ``max_wait`` is 5 for 40 s, and failed each
    whose budget was shorter. Times are Redis's, in ms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the three fields below
        self._end = 0  # the end of the pause last seen
        self._until = 0  # when this client stops honouring it
        self._passed = 0  # the end of the pause this client has honoured all it will

    def left(self, end: int, now: int, max_hold: int) -> int:
        """How much longer to honour the pause ending at ``end``; 0: pass it from now on."""
        with self._lock:
            if end != self._end:  # a new pause (or one a new Retry-After moved): its own clamp
                self._end = end
                self._until = now + min(end - now, max_hold)
            left = self._until - now
            if left <= 0:
                self._passed = end
            return max(0, left)

    def passed(self) -> int:
        with self._lock:
            return self._passed


class _RedisPermit:
    __slots__ = ("_done", "_limiter", "in_flight", "lease", "local", "sent_at_ms")

    def __init__(
        self,
        limiter: RedisLimiter,
        lease: str | None,
        local: Permit,
        *,
        sent_at_ms: int,
        in_flight: int,
    ) -> None:
        self._limiter = limiter
        self.lease: str | None = lease
        self.local: Permit = local
        self.sent_at_ms: int = sent_at_ms
        self.in_flight: int = in_flight
        self._done = threading.Lock()

    @property
    def held(self) -> bool:
        return not self._done.locked()

    def release(
        self,
        status: int | None = None,
        *,
        throttled: bool = False,
        word: ServerWord | None = None,
        total_tokens: int | None = None,
    ) -> None:
        if self._done.acquire(blocking=False):
            if throttled and self.lease is not None:
                # Before the local limiter weighs the 429 with our share of the sends.
                self._limiter._pace.refused(self.local.model, self.lease)
            self.local.release(status, throttled=throttled, word=word, total_tokens=total_tokens)
            retry_after = word.retry_after if word is not None else None
            self._limiter._release(self, status, throttled, retry_after)
