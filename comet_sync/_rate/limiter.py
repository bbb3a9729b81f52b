"""The limiter: what a request waits for before it may leave the process.

Every HTTP attempt of a client takes a permit before its request is sent and gives it back,
with what came back, once the response has been read (for a stream, once it is closed).
Web-server threads calling ``create`` directly and the client's executors draw from the same
limiter, so its bounds hold for the whole process's use of the client.

CometAPI sends each model to its own upstream channel, so each model has its own *lane*: its
own concurrency limit, pace, told limits, 429 history and retry quota. One model's limit never
slows another's calls; all lanes together stay under ``max_concurrency``. In order, a send
waits

1. for the adaptive throttle and, for a retry, the retry quota: in an outage sends are deferred
   (never failed) and tried again within the call's budget, each send on its own;
2. for its turn: the sends of a lane that have to wait leave first come, first served; only
   the first in line waits on the clock for what follows, the others for their turn;
3. for a hold on its lane: only when the server's own counters say its budget is spent
   (``remaining`` under one with a reset ahead), until the reset (or until our oldest send in
   the window the resets measure leaves it), never past ``max_wait``. A 429, however long its
   ``Retry-After``, delays the request that got it (its retry waits), not the lane: held
   lanes made every other caller's first attempt wait and then be refused again. One
   exception, once per cold lane: the first pace, measured on a 429 after successes, holds
   the lane until its ``Retry-After`` (``_on_throttled``); a wait in whole seconds may be
   rounded up, so that hold lets a probe out now and then, and one the server takes ends it;
4. for pacing: configured ``rpm``/``tpm`` (a ceiling the user chose), limits the server's
   headers told once their window is confirmed by the server's own numbers
   (``evidence.py``: a header names a count, not the window it counts over), and a rate
   found from 429s;
5. for a concurrency slot under the lane's limit and the client's ``max_concurrency``.

The policies are in ``policies.py``, whether 429s mean a concurrency cap (and the cut that
follows) in ``cap.py``; this module guards them and does the waiting. The seam a
shared limiter implements (``contrib.redis``) is :class:`LimiterProtocol`, in ``protocol.py``
with its contract.

Thread safety: ``_lock`` guards every field of the limiter and of its lanes (their lines
included) and their policy objects. It is held only for arithmetic: sleeps happen after it is
released, and log lines are written after it is released. A permit may be released from any
thread (a stream closed by the garbage collector, say); a second release is a no-op.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict, deque
from types import TracebackType

from .. import _cancel
from .._clock import SYSTEM_CLOCK, Clock
from .._config import RateControl
from .._exceptions import LimiterTimeoutError
from .._http.headers import ServerWord
from .cap import ConcurrencyCap
from .evidence import HeaderEvidence
from .policies import AdaptiveThrottle, Pacer, RateFinder, RetryQuota, precise
from .protocol import LimiterState, ModelState, SharedPace

__all__ = ["LONG_RETRY_AFTER", "Limiter", "Permit"]

logger = logging.getLogger("comet_sync")

# A Retry-After this long is the server saying its budget is out for a while: a shared limiter
# (contrib.redis) pauses every process on it. The local limiter holds lanes only on the
# server's counters (see the module docstring).
LONG_RETRY_AFTER = 5.0
# Pace a rate the server's headers told at this share of it: exactly at the limit, jitter on
# the way makes one request in a window too many.
TOLD_MARGIN = 0.98
# Configured ceilings allow a burst of this many seconds' worth of sends.
BURST_SECONDS = 0.1
# A send held back by the throttle or the retry quota asks again after about this long.
DEFER_SECONDS = 0.25
# A send waiting for its pace looks again at least this often: the pace may have grown.
PACE_SLICE = 0.1
# Lanes beyond this many, idle ones are forgotten (least recently used first).
MAX_LANES = 256


class _Lane:
    """One model's controls. Every field is guarded by the owning limiter's lock."""

    def __init__(self, control: RateControl, model: str | None, ceiling: int, now: float) -> None:
        self.in_use = 0
        self.cap = ConcurrencyCap(
            ceiling, initial=control.initial_concurrency, adaptive=control.adaptive
        )
        self.finder = RateFinder() if control.adaptive else None
        self.learned: Pacer | None = None
        rpm, tpm = control.rpm_for(model), control.tpm_for(model)
        self.rpm = _configured(rpm)
        self.tpm = _configured(tpm)
        self.told: Pacer | None = None  # paced by a confirmed requests header
        self.told_tokens: Pacer | None = None  # likewise tokens
        self.evidence = (HeaderEvidence("requests"), HeaderEvidence("tokens"))
        self.use_headers = control.use_headers
        self.line: deque[_Turn] = deque()  # sends waiting their turn, in arrival order
        self.hold_until = -math.inf
        # A hold on a whole-second Retry-After lets one send out at each of these times: the
        # wait may be rounded up (see ``Limiter._on_throttled``). None: no probing.
        self.probe_at: float | None = None
        self.probe_gap = 0.0
        self.holds = 0
        self.pace_version = 0  # moves on whenever the pace is lowered or a hold begins
        self.quota = RetryQuota(now=now) if control.throttle_retries else None
        self.throttle = AdaptiveThrottle(now=now) if control.throttle_retries else None
        self.throttled = 0
        self.cuts = 0
        self.deferred = 0

    def held(self, now: float) -> bool:
        """Whether a hold keeps sends back now (a probing hold lets one out at its times)."""
        return now < self.hold_until and (self.probe_at is None or now < self.probe_at)

    def held_until(self) -> float:
        """When the next send may go, as far as the hold goes."""
        if self.probe_at is None:
            return self.hold_until
        return min(self.hold_until, self.probe_at)

    def pacers(self, cost: float) -> tuple[tuple[Pacer | None, float], ...]:
        return (
            (self.rpm, 1.0),
            (self.told, 1.0),
            (self.learned, 1.0),
            (self.tpm, cost),
            (self.told_tokens, cost),
        )

    def rate(self) -> tuple[float | None, str | None]:
        found: list[tuple[float, str]] = []
        if self.rpm is not None:
            found.append((self.rpm.rate, "configured"))
        if self.told is not None:
            found.append((self.told.rate, "header"))
        if self.learned is not None:
            found.append((self.learned.rate, "learned"))
        if not found:
            return None, None
        return min(found)

    def tokens(self) -> tuple[float | None, str | None]:
        found: list[tuple[float, str]] = []
        if self.tpm is not None:
            found.append((self.tpm.rate * 60.0, "configured"))
        if self.told_tokens is not None:
            found.append((self.told_tokens.rate * 60.0, "header"))
        return min(found) if found else (None, None)


class Limiter:
    """The process-local limiter of one client: lanes per model under one concurrency cap."""

    def __init__(
        self,
        max_concurrency: int,
        control: RateControl,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_hold: float = 30.0,
        shared: SharedPace | None = None,
    ) -> None:
        self._control = control
        # The pace found here is handed to processes sharing the quota (contrib.redis).
        self._shared = shared
        self._clock = clock.monotonic
        self._sleep = clock.sleep
        self._random = clock.random
        self._max_hold = max_hold
        self._lock = threading.Lock()
        self._max = max_concurrency
        self._in_use = 0
        self._queue: deque[_Waiter] = deque()  # callers waiting for a slot, in arrival order
        self._lanes: OrderedDict[str | None, _Lane] = OrderedDict()

    def bind(self, *, clock: Clock, max_hold: float) -> None:
        self._clock, self._sleep, self._random = clock.monotonic, clock.sleep, clock.random
        self._max_hold = max_hold

    def after_fork(self) -> None:
        """The client builds a new local limiter in a forked child; nothing to carry over."""

    # -- sending -----------------------------------------------------------------------------

    def acquire(
        self,
        model: str | None = None,
        *,
        cost: float = 0.0,
        timeout: float | None = None,
        retry_cost: float = 0.0,
        scope: _cancel.Scope | None = None,
    ) -> Permit:
        """Wait until a request of ``model`` may be sent; raise :class:`LimiterTimeoutError`
        if that would take longer than ``timeout``. ``cost`` is its estimated tokens; a stop
        of ``scope`` (the asking call's) ends a wait for a turn or a slot."""
        permit = self._try_now(model, cost, retry_cost)
        if permit is not None:
            return permit
        deadline = None if timeout is None else self._clock() + timeout
        # The throttle and the retry quota first, each send on its own: in an outage they
        # defer sends at random, which in a line would defer everyone behind too.
        self._wait_throttle(model, retry_cost, deadline)
        turn = self._join_line(model, deadline, scope)
        try:
            while True:
                self._wait_hold(model, deadline)
                paced, version = self._wait_pacing(model, cost, deadline)
                queued = self._take_slot(model, deadline, scope)
                with self._lock:
                    now = self._clock()
                    lane = self._lane(model, now)
                    if lane.held(now) or (queued and lane.pace_version != version):
                        # The server's word, or a slower pace, came while this send waited
                        # for a slot: it applies to this send too (else every 429 would free a
                        # slot for the next waiter, already past the old pace, to be refused
                        # at wire speed). Give the slot back and wait again, first in line.
                        self._free_slot(lane)
                        continue
                    self._leave_line_locked(turn)
                    return self._sent_locked(lane, model, now, paced, cost, retry_cost)
        finally:
            with self._lock:
                self._leave_line_locked(turn)

    def _join_line(
        self, model: str | None, deadline: float | None, scope: _cancel.Scope | None
    ) -> _Turn:
        """Wait until every earlier send of the model that waited has left: held and paced
        sends leave first come, first served (without a line, whoever woke first after a
        hold went, and with 1 s holds one call waited 54.9 s while the median waited 5.1 s).
        Only the first in line sleeps on the clock; the others wait for their turn."""
        with self._lock:
            lane = self._lane(model, self._clock())
            turn = _Turn(lane)
            lane.line.append(turn)
            if lane.line[0] is turn:
                return turn
        self._wait_for(turn.event, deadline, scope)
        with self._lock:
            if lane.line and lane.line[0] is turn:
                return turn
            self._leave_line_locked(turn)
            now = self._clock()
            retry_after = None
            if now < lane.hold_until:
                retry_after = lane.hold_until - now
                ahead = f"a hold on the server's word ({retry_after:.3g}s)"
            elif any(pacer is not None for pacer, _ in lane.pacers(1.0)):
                ahead = "pacing"
            else:
                ahead = "a concurrency slot"
        if scope is not None:
            scope.raise_if_stopped()
        raise LimiterTimeoutError(
            f"the call's time budget ended while it waited behind earlier calls for {ahead}",
            held_by=ahead,
            retry_after=retry_after,
        )

    def _leave_line_locked(self, turn: _Turn) -> None:
        """Take ``turn`` out of its lane's line (once); the next in line, if it is now first,
        gets its turn."""
        line = turn.lane.line
        if turn.gone:
            return
        turn.gone = True
        first = bool(line) and line[0] is turn
        line.remove(turn)
        if first and line:
            line[0].event.set()

    def _try_now(self, model: str | None, cost: float, retry_cost: float) -> Permit | None:
        """The common case in one critical section: no hold, no throttle, no retry charge, no
        pacer asking to wait, nobody queued, a slot free. None: take the long way round."""
        with self._lock:
            now = self._clock()
            lane = self._lane(model, now)
            if lane.held(now) or self._queue or lane.line or not self._fits(lane):
                return None
            if lane.throttle is not None and lane.throttle.hold_probability(now) > 0:
                return None
            if retry_cost > 0 and lane.quota is not None:
                return None
            pacers = [
                (pacer, units)
                for pacer, units in lane.pacers(cost)
                if pacer is not None and units > 0
            ]
            for pacer, units in pacers:
                if pacer.wait(units, now) > 0:
                    return None
            for pacer, units in pacers:
                pacer.take(units, now)
            self._in_use += 1
            lane.in_use += 1
            return self._sent_locked(lane, model, now, False, cost, 0.0)

    def _sent_locked(
        self,
        lane: _Lane,
        model: str | None,
        now: float,
        paced: bool,
        cost: float,
        retry_cost: float,
    ) -> Permit:
        """The permit of a send that has its slot (the lock held)."""
        if lane.finder is not None:
            lane.finder.on_sent(now)
        self._take_probe_locked(lane, now)
        return Permit(
            self,
            model,
            sent_at=now,
            level=lane.in_use,
            limit=lane.cap.effective,
            paced=paced,
            cost=cost,
            retry_cost=retry_cost,
        )

    @staticmethod
    def _take_probe_locked(lane: _Lane, now: float) -> bool:
        """Whether a send now is its lane's hold's probe (the next one then goes twice as long
        after)."""
        if lane.probe_at is None or now < lane.probe_at:
            return False
        lane.probe_gap *= 2.0
        lane.probe_at = now + lane.probe_gap if now < lane.hold_until else None
        return now < lane.hold_until

    def _wait_hold(self, model: str | None, deadline: float | None) -> None:
        with self._lock:
            now = self._clock()
            until = self._lane(model, now).held_until()
        if now < until:
            self._sleep_out_hold(until, now, deadline)

    def _sleep_out_hold(self, until: float, now: float, deadline: float | None) -> None:
        # Everyone held comes back spread over a tenth of the hold, not in one herd.
        start = until + self._random() * min(1.0, 0.1 * (until - now))
        self._sleep_until(start, now, deadline, f"a hold on the server's word ({until - now:.3g}s)")

    def wait_out_hold(self, permit: Permit, deadline: float | None) -> None:
        """For a permit this limiter let go that then waited elsewhere (a shared slot,
        ``contrib.redis``): wait for a hold on its lane that began meanwhile, taking a probe's
        turn when one comes (the permit's send time then is when it goes). Without this, the
        sends queued on the shared slots went out into a hold the first 429 began (32 of 32
        callers refused in the first half second, where the hold meant to stop at one each
        round trip)."""
        while True:
            with self._lock:
                now = self._clock()
                lane = self._lane(permit.model, now)
                if not lane.held(now):
                    if self._take_probe_locked(lane, now):
                        permit.sent_at = now
                    return
                until = lane.held_until()
            self._sleep_out_hold(until, now, deadline)

    def _wait_throttle(self, model: str | None, retry_cost: float, deadline: float | None) -> None:
        # The retry quota is paid once, however long the send then waits.
        first_held: float | None = None
        while True:
            with self._lock:
                now = self._clock()
                lane = self._lane(model, now)
                held = None
                if lane.throttle is not None and (
                    self._random() < lane.throttle.hold_probability(now)
                ):
                    held = "the adaptive throttle (the server is failing most requests)"
                elif (
                    retry_cost > 0
                    and lane.quota is not None
                    and not lane.quota.try_withdraw(retry_cost, now)
                ):
                    held = "the retry quota (recent retries have failed)"
                if held is not None:
                    lane.deferred += 1
            if held is None:
                return
            # Deferred, not failed: our own caution delays work, it never loses it. But a
            # deferral is a wait like any other, under the cap on every wait (max_wait): past
            # it, the caller learns of the outage instead of sitting in the client (32 threads
            # on a dead upstream sat up to 52 s between attempts, under a 15-minute budget).
            first_held = now if first_held is None else first_held
            wake = now + DEFER_SECONDS * (0.5 + self._random())
            if wake - first_held > self._max_hold:
                raise LimiterTimeoutError(
                    f"held {now - first_held:.3g}s by {held}, the most a send is deferred "
                    f"(max_wait={self._max_hold:g}s): the upstream looks to be in an outage",
                    held_by=held,
                    outage=True,
                )
            self._sleep_until(wake, now, deadline, held)

    def _wait_pacing(
        self, model: str | None, cost: float, deadline: float | None
    ) -> tuple[bool, int]:
        """Wait for each of the lane's pacers: whether pacing made the send wait, and the
        lane's pace version when it took its units."""
        paced = False
        while True:
            with self._lock:
                now = self._clock()
                lane = self._lane(model, now)
                pacers = [
                    (pacer, units)
                    for pacer, units in lane.pacers(cost)
                    if pacer is not None and units > 0
                ]
                wait = max((pacer.wait(units, now) for pacer, units in pacers), default=0.0)
                if wait <= 0:
                    for pacer, units in pacers:
                        pacer.take(units, now)
                    return paced, lane.pace_version
            paced = True
            if deadline is not None and now + wait > deadline:
                self._sleep_until(now + wait, now, deadline, f"pacing ({wait:.3g}s)")
            # In slices: a pace that grows meanwhile lets this send out sooner.
            self._sleep(min(wait, PACE_SLICE))

    def _sleep_until(self, when: float, now: float, deadline: float | None, what: str) -> None:
        if deadline is not None and when > deadline:
            raise LimiterTimeoutError(
                f"the call's time budget ends before {what} lets it out",
                held_by=what,
                retry_after=when - now,
            )
        self._sleep(when - now)

    def _take_slot(
        self, model: str | None, deadline: float | None, scope: _cancel.Scope | None
    ) -> bool:
        """Take a slot under the lane's limit and the client's; True if the send queued."""
        with self._lock:
            lane = self._lane(model, self._clock())
            if not self._queue and self._fits(lane):
                self._in_use += 1
                lane.in_use += 1
                return False
            waiter = _Waiter(lane)
            self._queue.append(waiter)
        # Slots are handed out by _grant_locked, first come first served within a lane: a
        # thread that releases a slot and at once asks again cannot jump the queue.
        self._wait_for(waiter.event, deadline, scope)
        with self._lock:
            if waiter.granted:
                return True
            self._queue.remove(waiter)
        if scope is not None:
            scope.raise_if_stopped()
        raise LimiterTimeoutError(
            f"the call's time budget ended while it waited for a concurrency slot "
            f"({self._in_use} in flight, model limit {lane.cap.effective})",
            held_by="a concurrency slot",
        )

    def _wait_for(
        self, event: threading.Event, deadline: float | None, scope: _cancel.Scope | None
    ) -> None:
        """Wait until ``event`` is set, the deadline passes, or the call's stop scope stops
        (close() or a stopped map: a call that may not send must not wait); the caller
        raises from the scope if it stopped."""
        remaining = None if deadline is None else max(deadline - self._clock(), 0.0)
        if scope is None:
            event.wait(remaining)
        else:
            with scope.on_stop(event.set):
                event.wait(remaining)

    def _fits(self, lane: _Lane) -> bool:
        return self._in_use < self._max and lane.in_use < lane.cap.effective

    def _grant_locked(self) -> None:
        if not self._queue:
            return
        # A waiter whose lane is full does not block waiters of other lanes behind it.
        for waiter in list(self._queue):
            if self._in_use >= self._max:
                return
            if self._fits(waiter.lane):
                self._queue.remove(waiter)
                waiter.granted = True
                self._in_use += 1
                waiter.lane.in_use += 1
                waiter.event.set()

    def _free_slot(self, lane: _Lane) -> None:
        self._in_use -= 1
        lane.in_use -= 1
        self._grant_locked()

    def _lane(self, model: str | None, now: float) -> _Lane:
        lane = self._lanes.get(model)
        if lane is None:
            lane = self._lanes[model] = _Lane(self._control, model, self._max, now)
            if len(self._lanes) > MAX_LANES:
                for key, old in list(self._lanes.items()):
                    if old.in_use == 0 and not old.line and key != model:
                        del self._lanes[key]
                        break
        else:
            self._lanes.move_to_end(model)
        return lane

    # -- outcomes ----------------------------------------------------------------------------

    def _release(
        self,
        permit: Permit,
        status: int | None,
        throttled: bool,
        word: ServerWord | None,
        total_tokens: int | None,
    ) -> None:
        messages: list[tuple[str, tuple[object, ...]]] = []
        with self._lock:
            now = self._clock()
            lane = self._lane(permit.model, now)
            before = lane.learned.rate if lane.learned is not None else None
            in_flight = lane.in_use  # this request's answer included (see ConcurrencyCap.level)
            self._in_use -= 1
            lane.in_use -= 1
            ok = status is not None and 200 <= status < 300
            voided = False
            if lane.throttle is not None and status != 429:
                # 429s are the pacing's business; the throttle watches for servers that fail.
                lane.throttle.on_result(status is not None and status < 500, now)
            if word is not None and lane.use_headers:
                self._heed(lane, permit, word, now, messages)
            if ok and lane.use_headers:
                spent = (1.0, float(total_tokens if total_tokens is not None else permit.cost))
                for evidence, units in zip(lane.evidence, spent):
                    self._note(evidence.admitted(permit.sent_at, units, now), permit, messages)
                self._follow(lane, now)
            if throttled:
                self._on_throttled(lane, permit, in_flight, word, now, messages)
            elif ok:
                voided = self._on_success(lane, permit, in_flight, now)
            if total_tokens is not None:
                for pacer in (lane.tpm, lane.told_tokens):
                    if pacer is not None:
                        pacer.adjust(total_tokens - permit.cost)
            self._grant_locked()
            after = lane.learned.rate if lane.learned is not None else None
            # Only a pace a measure backs is shared: the first 429's guess (half what was
            # sent) is one process's reaction, and shared it slowed every process on the
            # quota (a told rpm of 3000 over 4 processes ran 1.2-1.5x slower on one 429).
            # A measure over a whole-second Retry-After is shared once borne out: shared at
            # once, processes that took it were not held, and sent into the full window.
            backed = (
                lane.finder is not None
                and lane.finder.found is not None
                and not lane.finder.rounded(now)
            )
        for message, args in messages:
            logger.info(message, *args)
        if self._shared is not None and after != before and backed:
            # A 429 changes the pace on a measure (or stops it on noise); a success only grows it.
            self._shared.publish(permit.model, after, measured=throttled or voided)

    def _heed(
        self,
        lane: _Lane,
        permit: Permit,
        word: ServerWord,
        now: float,
        messages: list[tuple[str, tuple[object, ...]]],
    ) -> None:
        """Weigh what the server's rate headers said (see ``evidence.py``): a confirmed
        window paces, a spent budget holds, anything else waits for more evidence."""
        for evidence, quota in zip(lane.evidence, (word.requests, word.tokens)):
            self._note(evidence.observe(quota, word.source, now), permit, messages)
            spent = evidence.spent_for(now)
            if spent is not None:
                # Spent: nothing is admitted before a unit comes back.
                self._hold(lane, now, spent, permit.model, messages)
        self._follow(lane, now)

    def _follow(self, lane: _Lane, now: float) -> None:
        """The told pacers, after the evidence: each paces at a confirmed rate, else not at
        all. None ever spaces sends further apart than a hold may last."""
        requests, tokens = (evidence.rate for evidence in lane.evidence)
        before = (lane.told, lane.told_tokens)
        lane.told = self._told_pacer(lane.told, requests, now, burst=1.0)
        lane.told_tokens = self._told_pacer(
            lane.told_tokens, tokens, now, burst=max(1.0, (tokens or 0.0) * BURST_SECONDS)
        )
        if any(
            old is None and new is not None
            for old, new in zip(before, (lane.told, lane.told_tokens))
        ):
            lane.pace_version += 1  # a new pace: sends queued before it go back through it

    def _told_pacer(
        self, pacer: Pacer | None, rate: float | None, now: float, *, burst: float
    ) -> Pacer | None:
        if rate is None:
            return None
        rate = max(rate * TOLD_MARGIN, 1.0 / self._max_hold)
        if pacer is None:
            return Pacer(rate, burst=burst)
        if abs(pacer.rate - rate) > 0.01 * rate:
            pacer.set_rate(rate, now)
        return pacer

    @staticmethod
    def _note(
        message: str | None, permit: Permit, messages: list[tuple[str, tuple[object, ...]]]
    ) -> None:
        if message is not None:
            messages.append(("model %s: rate headers: %s", (permit.model, message)))

    def _hold(
        self,
        lane: _Lane,
        now: float,
        seconds: float,
        model: str | None,
        messages: list[tuple[str, tuple[object, ...]]],
        *,
        probe: float | None = None,
    ) -> None:
        """Hold the lane ``seconds`` (at most ``max_wait``); with ``probe``, let one send out
        that long into it, then after twice as long, and so on."""
        seconds = min(seconds, self._max_hold)
        until = now + seconds
        if until > lane.hold_until:
            lane.probe_at = None if probe is None else now + probe
            lane.probe_gap = probe or 0.0
            if seconds >= 1.0:
                messages.append(
                    (
                        "model %s: the server's budget is spent: holding sends %.3gs",
                        (model, seconds),
                    )
                )
            lane.hold_until = until
            lane.holds += 1
            lane.pace_version += 1

    def _on_throttled(
        self,
        lane: _Lane,
        permit: Permit,
        in_flight: int,
        word: ServerWord | None,
        now: float,
        messages: list[tuple[str, tuple[object, ...]]],
    ) -> None:
        lane.throttled += 1
        if lane.finder is None:
            return
        # A concurrency cap or a rate? The cap policy judges (cap.py); a cap's 429 leaves the
        # pace alone.
        cut = lane.cap.on_throttled(permit.level, in_flight, now)
        if cut is not None:
            if cut.fell:
                lane.cuts += 1
                level = lane.cap.level(permit.level, in_flight)
                messages.append(
                    (
                        "model %s: 429 with %d in flight: concurrency limit %d -> %d",
                        (permit.model, level, cut.before, cut.after),
                    )
                )
            return
        cold = lane.learned is None and lane.finder.found is None
        # A send that took its pace before a cut and waited for a slot goes back through the
        # pace (see acquire), so its send time says which pace spaced it.
        rate = lane.finder.on_throttled(
            permit.sent_at,
            now,
            lane.cap.round_trip,
            told=lane.told is not None
            or lane.rpm is not None
            or (self._shared is not None and self._shared.told),
            retry_after=word.retry_after if word is not None else None,
            scale=self._shared.scale(permit.model) if self._shared is not None else 1.0,
            # Ours still out, but for a shared limiter: its sends in use here may still wait
            # for a shared slot (four processes' first paces read 45-72/s of 50/s with them).
            pending=in_flight - 1 if self._shared is None else 0,
            quota_took=self._shared.took(permit.model) if self._shared is not None else None,
        )
        if rate is None:
            return
        if math.isinf(rate):
            lane.learned = None
            messages.append(
                (
                    "model %s: 429s do not fall when sending slower: not pacing "
                    "for them (%.0f%% of requests refused regardless)",
                    (permit.model, 100 * (lane.finder.noise_share or 0.0)),
                )
            )
            return
        rate = max(rate, 1.0 / self._max_hold)  # no pace interval longer than a hold may be
        retry_after = word.retry_after if word is not None else None
        if cold and retry_after is not None and (precise(retry_after) or lane.finder.rounded(now)):
            # The first pace, measured on a refusal after successes: the server's budget is
            # spent until its Retry-After, and nothing else is known yet. Sent meanwhile, every
            # caller's next request was refused (a sliding window full for a second: 25 of 300
            # jobs; with whole seconds, 32 refused, then 50 taken and 21 refused when they all
            # woke a second later). Once: a lane paced since (or noise found) is not cold.
            # A wait in whole seconds may be rounded up (a token bucket's 20 ms): a probe goes
            # a fifth of the way in, then at twice the interval; one the server takes ends the
            # hold and the measure (``RateFinder.on_accepted``).
            probe = None if precise(retry_after) else 0.2 * retry_after
            self._hold(lane, now, retry_after, permit.model, messages, probe=probe)
        if lane.learned is None:
            lane.learned = Pacer(rate, burst=1.0)  # a learned rate never bursts
        else:
            lane.learned.set_rate(rate, now)
        lane.cuts += 1
        lane.pace_version += 1
        messages.append(("model %s: 429: pacing at %.3g requests/s", (permit.model, rate)))

    def _on_success(self, lane: _Lane, permit: Permit, in_flight: int, now: float) -> bool:
        """Whether this success voided the pace's measure (a probe taken early)."""
        voided = None
        lane.cap.on_success(permit.level, in_flight, permit.limit, permit.sent_at, now)
        if lane.quota is not None:
            # A retry that healed gets its price back; a first success adds one.
            lane.quota.deposit(permit.retry_cost or 1.0, now)
        if lane.finder is not None:
            voided = lane.finder.on_accepted(permit.sent_at, now)
            if voided is not None and lane.learned is not None:
                # A probe taken before the Retry-After: the server has room; so do we.
                lane.hold_until = now
                lane.probe_at = None
                lane.learned.set_rate(voided, now)
            if permit.paced and lane.learned is not None:
                rate = lane.finder.on_success_paced(now)
                if rate is not None:
                    lane.learned.set_rate(rate, now)
        return voided is not None

    def adopt_pace(self, model: str | None, rate: float) -> None:
        """Pace ``model`` at ``rate``, a pace another process sharing the quota set
        (``SharedPace``): a 429 here measures from it, a success paced by it grows it. (A
        shared pace that ends, on noise or unused, ends nothing here: each process then keeps
        its own, as it would alone.)"""
        with self._lock:
            now = self._clock()
            lane = self._lane(model, now)
            if lane.finder is None:
                return
            rate = max(rate, 1.0 / self._max_hold)
            lane.finder.adopt(rate, now)
            if lane.learned is None:
                lane.learned = Pacer(rate, burst=1.0)
                lane.pace_version += 1
            elif rate != lane.learned.rate:
                if rate < lane.learned.rate:
                    lane.pace_version += 1
                lane.learned.set_rate(rate, now)

    # -- reading -----------------------------------------------------------------------------

    def paces_tokens(self, model: str | None) -> bool:
        with self._lock:
            lane = self._lanes.get(model)
            if lane is None:
                return self._control.tpm_for(model) is not None
            return lane.tpm is not None or lane.told_tokens is not None

    @property
    def in_use(self) -> int:
        return self._in_use

    def state(self) -> LimiterState:
        with self._lock:
            now = self._clock()
            models: dict[str, ModelState] = {}
            for key, lane in self._lanes.items():
                rate, source = lane.rate()
                tpm, tpm_source = lane.tokens()
                models[key or ""] = ModelState(
                    concurrency_limit=lane.cap.effective,
                    in_flight=lane.in_use,
                    rate=rate,
                    rate_source=source,
                    tpm=tpm,
                    tpm_source=tpm_source,
                    held_for=max(0.0, lane.hold_until - now),
                    throttled=lane.throttled,
                    cuts=lane.cuts,
                    deferred=lane.deferred,
                    retry_tokens=lane.quota.tokens if lane.quota is not None else None,
                    noise_share=lane.finder.noise_share if lane.finder is not None else None,
                    limits=tuple(e.state() for e in lane.evidence if e.source is not None),
                    waiting=len(lane.line),
                )
            in_use = self._in_use
        learned = [m.rate for m in models.values() if m.rate_source == "learned"]
        return LimiterState(
            max_concurrency=self._max,
            concurrency_limit=min(
                (m.concurrency_limit for m in models.values()), default=self._max
            ),
            in_flight=in_use,
            learned_rate=min(r for r in learned if r is not None)
            if any(r is not None for r in learned)
            else None,
            rpm=self._control.rpm if isinstance(self._control.rpm, (int, float)) else None,
            tpm=self._control.tpm if isinstance(self._control.tpm, (int, float)) else None,
            held_for=max((m.held_for for m in models.values()), default=0.0),
            holds=sum(lane.holds for lane in self._lanes.values()),
            cuts=sum(m.cuts for m in models.values()),
            retry_tokens=min(
                (m.retry_tokens for m in models.values() if m.retry_tokens is not None),
                default=None,
            ),
            deferred=sum(m.deferred for m in models.values()),
            models=models,
        )


class _Waiter:
    __slots__ = ("event", "granted", "lane")

    def __init__(self, lane: _Lane) -> None:
        self.event = threading.Event()
        self.granted = False
        self.lane = lane


class _Turn:
    """A send's place in its lane's line (see ``Limiter._join_line``)."""

    __slots__ = ("event", "gone", "lane")

    def __init__(self, lane: _Lane) -> None:
        self.event = threading.Event()  # set when it becomes first in line, or is stopped
        self.gone = False
        self.lane = lane


def _configured(per_minute: float | None) -> Pacer | None:
    if per_minute is None:
        return None
    rate = per_minute / 60.0
    return Pacer(rate, burst=max(1.0, rate * BURST_SECONDS))


class Permit:
    """One request's leave to be on the wire. Release it once, with what came back."""

    __slots__ = (
        "_limiter",
        "_lock",
        "cost",
        "level",
        "limit",
        "model",
        "paced",
        "retry_cost",
        "sent_at",
    )

    def __init__(
        self,
        limiter: Limiter,
        model: str | None,
        *,
        sent_at: float,
        level: int,
        limit: int,
        paced: bool,
        cost: float,
        retry_cost: float,
    ) -> None:
        self._limiter: Limiter | None = limiter
        self._lock = threading.Lock()
        self.model: str | None = model
        self.sent_at: float = sent_at
        self.level: int = level  # this model's requests in flight with this one
        self.limit: int = limit  # the model's concurrency limit when it was sent
        self.paced: bool = paced  # pacing held it back: the pace was the constraint
        self.cost: float = cost
        self.retry_cost: float = retry_cost

    @property
    def held(self) -> bool:
        return self._limiter is not None

    def release(
        self,
        status: int | None = None,
        *,
        throttled: bool = False,
        word: ServerWord | None = None,
        total_tokens: int | None = None,
    ) -> None:
        # The lock makes release idempotent when a stream's close() and its finalizer race.
        with self._lock:
            limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self, status, throttled, word, total_tokens)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
