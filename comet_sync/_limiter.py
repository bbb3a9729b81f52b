"""The limiter: what a request waits for before it may leave the process.

Every HTTP attempt of a client takes a :class:`Permit` before its request is sent and gives it
back, with the outcome, once the response has been read (for a stream, once it is closed).
Web-server threads calling ``create`` directly and the client's executor draw from the same
limiter, so its bounds hold for the whole process's use of the client. In order, a send waits

1. for a cooldown: a ``Retry-After`` from the server pauses every new send of the client, and
   the restart is spread with jitter instead of released all at once;
2. for pacing: configured ``rpm``/``tpm`` ceilings and a rate learned from 429s;
3. for a concurrency slot under the effective (AIMD) limit.

The policies are in ``_control.py``; this module guards them and does the waiting.

Thread safety: ``_lock`` guards every field below it in
``__init__`` and the policy objects. It is held only for arithmetic: sleeps happen after it is
released, and log lines are written after it is released. A permit may be released from any
thread (a stream closed by the garbage collector, say); a second release is a no-op.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Callable

from ._config import RateControl
from ._control import AIMDConcurrency, Pacer, RateLearner, RetryBudget

__all__ = ["Limiter", "LimiterState", "Permit"]

logger = logging.getLogger("comet_sync")


@dataclass(frozen=True)
class LimiterState:
    """What the limiter is doing, for ``client.metrics.snapshot().limiter`` and dashboards."""

    max_concurrency: int
    concurrency_limit: int
    in_flight: int
    learned_rate: float | None  # requests/s, None until 429s teach one
    rpm: float | None
    tpm: float | None
    cooling_down_for: float  # seconds left of a Retry-After pause, 0 when none
    cooldowns: int
    cuts: int
    retry_tokens: float | None  # None when the retry budget is off
    retries_refused: int


class Limiter:
    def __init__(
        self,
        max_concurrency: int,
        control: RateControl,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        random: Callable[[], float],
    ) -> None:
        self._control = control
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()  # callers waiting for a slot, in arrival order
        now = clock()
        self._max = max_concurrency
        self._aimd = AIMDConcurrency(
            max_concurrency,
            decrease=control.decrease,
            # Without adaptation the limit is simply max_concurrency from the start.
            initial=control.initial_concurrency if control.adaptive else max_concurrency,
            probe_interval=control.probe_interval,
            max_probe_interval=control.max_probe_interval,
        )
        self._in_use = 0
        self._cooldown_until = -math.inf
        self._cooldown_spread = 0.0
        self._cooldown_epoch = 0
        self._cooldowns = 0
        self._cuts = 0
        self._last_cut = -math.inf
        self._retries_refused = 0
        self._rpm = _pacer(control.rpm, control.burst_seconds)
        self._tpm = _pacer(control.tpm, control.burst_seconds)
        self._learner = (
            RateLearner(
                horizon=control.rate_horizon,
                margin=control.rate_margin,
                decrease=control.rate_decrease,
                recover=control.rate_recover,
                probe=control.rate_probe,
                floor=1.0 / 60.0,
                probe_interval=control.probe_interval,
                max_probe_interval=control.max_probe_interval,
                hold=control.rate_hold,
            )
            # Learned even under a configured rpm: the ceiling is what may be sent, the learned
            # rate what the server accepts today, and it can be lower.
            if control.learn_rate
            else None
        )
        self._learned: Pacer | None = None
        self._budget = (
            RetryBudget(
                ratio=control.retry_ratio,
                floor_per_second=control.retry_floor_per_second,
                initial=control.retry_initial,
                capacity=control.retry_capacity,
                now=now,
            )
            if control.retry_budget
            else None
        )

    # -- sending -----------------------------------------------------------------------------

    def acquire(self, *, cost: float = 0.0, timeout: float | None = None,
                first_attempt: bool = True) -> Permit | None:
        """Wait until a request may be sent; None if that would take longer than ``timeout``.

        ``cost`` is the request's estimated tokens, for ``tpm``.
        """
        deadline = None if timeout is None else self._clock() + timeout
        handled = -1
        while True:
            waited = self._wait_cooldown(deadline, handled)
            if waited is None:
                return None
            handled = waited
            paced = self._wait_pacing(cost, deadline)
            if paced is None:
                return None
            if not self._take_slot(deadline):
                return None
            with self._lock:
                now = self._clock()
                if (
                    self._control.cooldown
                    and self._cooldown_epoch != handled
                    and now < self._cooldown_until
                ):
                    # A Retry-After came while this send waited for pacing or a slot: it
                    # applies to this send too. Give the slot to the next in line.
                    self._in_use -= 1
                    self._grant_locked()
                    continue
                in_flight = self._in_use
                limit = self._aimd.effective
                if self._learner is not None:
                    self._learner.on_sent(now)
                if first_attempt and self._budget is not None:
                    self._budget.on_first_attempt(now)
            return Permit(self, sent_at=now, in_flight=in_flight, limit=limit, paced=paced,
                          cost=cost)

    def _take_slot(self, deadline: float | None) -> bool:
        """Take a slot under the concurrency limit, first come first served; False if the
        deadline passes first."""
        with self._lock:
            if not self._queue and self._in_use < self._aimd.effective:
                self._in_use += 1
                return True
            waiter = _Waiter()
            self._queue.append(waiter)
        # Slots are handed to the head of the queue by _grant_locked: a thread that releases
        # a slot and at once asks again cannot jump the queue, so no caller starves.
        remaining = None if deadline is None else max(deadline - self._clock(), 0.0)
        waiter.event.wait(remaining)
        with self._lock:
            if waiter.granted:
                return True
            self._queue.remove(waiter)
            return False

    def _grant_locked(self) -> None:
        while self._queue and self._in_use < self._aimd.effective:
            waiter = self._queue.popleft()
            waiter.granted = True
            self._in_use += 1
            waiter.event.set()

    def _wait_cooldown(self, deadline: float | None, handled: int) -> int | None:
        """Wait out a Retry-After pause; the pause (epoch) now dealt with, None on timeout."""
        if not self._control.cooldown:
            return handled
        while True:
            with self._lock:
                now = self._clock()
                until, spread, epoch = (
                    self._cooldown_until, self._cooldown_spread, self._cooldown_epoch
                )
            # Every send that would start inside the pause or the spread after it draws its own
            # start time in [until, until + spread]: the herd comes back one by one. A send
            # waits once per pause, and again only if a new 429 set a new one meanwhile.
            if epoch == handled or now >= until + spread:
                return epoch
            start = until + self._random() * spread
            if start > now:
                if deadline is not None and start > deadline:
                    return None
                self._sleep(start - now)
            handled = epoch

    def _wait_pacing(self, cost: float, deadline: float | None) -> bool | None:
        """Reserve a place in each pacer; True if the send had to wait (pacing held it)."""
        with self._lock:
            now = self._clock()
            wait = 0.0
            for pacer, units in ((self._rpm, 1.0), (self._learned, 1.0), (self._tpm, cost)):
                if pacer is not None and units > 0:
                    wait = max(wait, pacer.reserve(units, now))
        if wait <= 0:
            return False
        if deadline is not None and now + wait > deadline:
            return None
        self._sleep(wait)
        return True

    # -- outcomes ----------------------------------------------------------------------------

    def _release(self, permit: Permit, status: int | None, throttled: bool,
                 retry_after: float | None, total_tokens: int | None) -> None:
        messages: list[tuple[str, tuple[object, ...]]] = []
        with self._lock:
            now = self._clock()
            self._in_use -= 1
            if throttled:
                self._on_throttled(permit, now, retry_after, messages)
            elif status is not None and 200 <= status < 300:
                self._on_success(permit, now, messages)
            if total_tokens is not None and self._tpm is not None:
                self._tpm.adjust(total_tokens - permit.cost)
            self._grant_locked()
        for message, args in messages:
            logger.info(message, *args)

    def _on_throttled(self, permit: Permit, now: float, retry_after: float | None,
                      messages: list[tuple[str, tuple[object, ...]]]) -> None:
        self._cut(permit, now, messages)
        # After the cut, so the learner measured the rate up to this pause, not across it.
        self._start_cooldown(now, retry_after, messages)

    def _cut(self, permit: Permit, now: float,
             messages: list[tuple[str, tuple[object, ...]]]) -> None:
        # One cut per window, as TCP reacts once per round trip: a 429 on a request sent before
        # the last cut belongs to the burst that cut already answered.
        if permit.sent_at < self._last_cut:
            return
        self._last_cut = now
        self._cuts += 1
        # Cut what held: a request sent while the concurrency limit was full says the limit is
        # too high; one sent below it, or at a limit of 1, says requests come too fast. "Full"
        # allows one short: the server may not yet have counted a request as finished when
        # its answer reached us and the next one left.
        # The limit counts as full if it was when this request left or when its answer came
        # back (the first 429 of a burst may be the one that left first).
        in_flight = max(permit.in_flight, self._in_use + 1)
        full = in_flight >= max(2, permit.limit - 1)
        if self._control.adaptive and full and permit.limit > 1:
            before = self._aimd.effective
            self._aimd.cut(in_flight, now)
            messages.append(("429: concurrency limit %d -> %d", (before, self._aimd.effective)))
            if self._learner is not None:
                rate = self._learner.cap_at_measured(now)
                if rate is not None:
                    self._set_learned_rate(rate, now)
                    messages.append(("429: pacing at most %.3g requests/s", (rate,)))
        elif self._learner is not None:
            rate = self._learner.on_throttled(now)
            if rate is not None:
                self._set_learned_rate(rate, now)
                messages.append(("429: pacing at %.3g requests/s", (rate,)))

    def _start_cooldown(self, now: float, retry_after: float | None,
                        messages: list[tuple[str, tuple[object, ...]]]) -> None:
        if (
            not self._control.cooldown
            or retry_after is None
            or now + retry_after <= self._cooldown_until
        ):
            return
        self._cooldown_until = now + retry_after
        self._cooldown_spread = min(self._control.max_cooldown_spread,
                                    retry_after * self._control.cooldown_spread)
        self._cooldown_epoch += 1
        self._cooldowns += 1
        if self._learner is not None:
            self._learner.note_pause(self._cooldown_until)
        messages.append(("server asked for %.3gs: pausing new sends", (retry_after,)))

    def _on_success(self, permit: Permit, now: float,
                    messages: list[tuple[str, tuple[object, ...]]]) -> None:
        if self._control.adaptive:
            before = self._aimd.effective
            if self._aimd.on_success(permit.in_flight, permit.sent_at, now):
                messages.append(("concurrency limit %d -> %d", (before, self._aimd.effective)))
        if self._learner is not None:
            self._learner.on_accepted(now)
            if permit.paced and self._learned is not None:
                rate = self._learner.on_success_paced(now)
                if rate is not None:
                    self._set_learned_rate(rate, now)

    def _set_learned_rate(self, rate: float, now: float) -> None:
        # A learned rate never bursts: the whole point is to spread sends evenly.
        if self._learned is None:
            self._learned = Pacer(rate, burst=1.0)
        else:
            self._learned.set_rate(rate, now)

    # -- retry budget ------------------------------------------------------------------------

    def allow_retry(self) -> bool:
        if self._budget is None:
            return True
        messages: list[tuple[str, tuple[object, ...]]] = []
        with self._lock:
            now = self._clock()
            allowed = self._budget.try_spend(now)
            if not allowed:
                self._retries_refused += 1
                # Failures beyond the budget look like an outage: fresh first attempts would
                # only fail too, so new sends pause a moment, as for a Retry-After.
                if self._control.outage_pause > 0:
                    self._start_cooldown(now, self._control.outage_pause, messages)
        for message, args in messages:
            logger.info(message, *args)
        return allowed

    # -- reading -----------------------------------------------------------------------------

    @property
    def paces_tokens(self) -> bool:
        return self._tpm is not None

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def limit(self) -> int:
        return self._aimd.effective

    def state(self) -> LimiterState:
        with self._lock:
            now = self._clock()
            return LimiterState(
                max_concurrency=self._max,
                concurrency_limit=self._aimd.effective,
                in_flight=self._in_use,
                learned_rate=self._learned.rate if self._learned is not None else None,
                rpm=self._control.rpm,
                tpm=self._control.tpm,
                cooling_down_for=max(0.0, self._cooldown_until - now),
                cooldowns=self._cooldowns,
                cuts=self._cuts,
                retry_tokens=self._budget.tokens if self._budget is not None else None,
                retries_refused=self._retries_refused,
            )


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.granted = False


def _pacer(per_minute: float | None, burst_seconds: float) -> Pacer | None:
    if per_minute is None:
        return None
    rate = per_minute / 60.0
    return Pacer(rate, burst=max(1.0, rate * burst_seconds))


class Permit:
    """One request's leave to be on the wire. Release it once, with what came back."""

    __slots__ = ("_limiter", "_lock", "cost", "in_flight", "limit", "paced", "sent_at")

    def __init__(self, limiter: Limiter, *, sent_at: float, in_flight: int, limit: int,
                 paced: bool, cost: float) -> None:
        self._limiter: Limiter | None = limiter
        self._lock = threading.Lock()
        self.sent_at = sent_at
        self.in_flight = in_flight
        self.limit = limit
        self.paced = paced
        self.cost = cost

    @property
    def held(self) -> bool:
        return self._limiter is not None

    def release(self, status: int | None = None, *, throttled: bool = False,
                retry_after: float | None = None, total_tokens: int | None = None) -> None:
        # The lock makes release idempotent when a stream's close() and its finalizer race.
        with self._lock:
            limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self, status, throttled, retry_after, total_tokens)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
