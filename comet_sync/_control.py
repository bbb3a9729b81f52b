"""Rate-control policies: pure state machines on an explicit clock, with no locks and no sleeps.

The limiter (``_limiter.py``) owns one of each, guards them with its lock, and does the
waiting. Keeping the arithmetic here lets the tests drive each policy with exact times.

* :class:`AIMDConcurrency` — the in-flight limit: cut multiplicatively on a 429, grown
  additively while successes come back and the limit is actually used.
* :class:`Pacer` — a token bucket kept as a theoretical arrival time (GCRA): each send reserves
  its cost and is told how long to wait, so callers are spaced evenly instead of released in
  bursts. Used for configured ``rpm``/``tpm`` and for a learned request rate.
* :class:`RateLearner` — learns a request rate from 429s when none is configured: measures the
  rate the server accepted, paces a little under it, cuts on further 429s and probes upward.
* :class:`RetryBudget` — retries may add only a bounded share of load.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["AIMDConcurrency", "Pacer", "RateLearner", "RetryBudget"]


class AIMDConcurrency:
    """The effective concurrency limit, between 1 and ``ceiling``.

    It starts low and doubles each round trip (TCP's slow start) until the ceiling or a 429,
    so an unknown small limit costs a handful of 429s rather than a ceiling's worth. On a 429
    (the caller decides which ones are news, once per window) it is cut to ``decrease`` of
    itself, and the in-flight level that was refused is remembered. Successes then grow it
    quickly back to just under that level, hold there, and only after ``probe_interval``
    seconds probe above it, one step per window. A probe refused at the same level doubles the
    interval (up to ``max_probe_interval``), so a steady limit is probed rarely; a probe that
    succeeds forgets the old level, so a risen limit is found again.
    """

    def __init__(self, ceiling: int, *, decrease: float, initial: int,
                 probe_interval: float, max_probe_interval: float) -> None:
        self.ceiling = ceiling
        self.decrease = decrease
        self.limit = float(max(1, min(initial, ceiling)))
        self.refused_level: int | None = None
        self.slow_start = True
        self.base_interval = probe_interval
        self.max_interval = max_probe_interval
        self.interval = probe_interval
        self.probe_at = -math.inf
        self.cut_at = -math.inf

    @property
    def effective(self) -> int:
        return max(1, int(self.limit))

    def cut(self, level: int, now: float) -> None:
        """A 429 answered a request sent with ``level`` requests in flight."""
        again = self.refused_level is not None and level >= self.refused_level
        self.interval = min(self.max_interval, self.interval * 2) if again else self.base_interval
        self.refused_level = level
        self.limit = max(1.0, min(self.limit, float(level)) * self.decrease)
        self.probe_at = now + self.interval
        self.cut_at = now
        self.slow_start = False

    def on_success(self, in_flight_at_send: int, sent_at: float, now: float) -> bool:
        """A success came back; True if the effective limit grew."""
        # Grow only when the limit was the constraint: a limit of 32 that never sees more than
        # 3 in flight has proved nothing about 32, and growing it would only store up a burst.
        if self.limit >= self.ceiling or in_flight_at_send < self.effective:
            return False
        refused = self.refused_level
        if refused is not None and in_flight_at_send >= refused and sent_at > self.cut_at:
            # The refused level now succeeds (and not merely a request sent before the cut).
            refused = self.refused_level = None
        before = self.effective
        if self.slow_start:
            self.limit += 1.0
        elif refused is not None and self.limit < refused - 1:
            self.limit = min(float(refused - 1), self.limit + 1.0)
        elif refused is not None and now < self.probe_at:
            return False
        else:
            self.limit += 1.0 / self.limit  # one step per window of successes
        self.limit = min(float(self.ceiling), self.limit)
        return self.effective != before


class Pacer:
    """A token bucket of ``rate`` units per second and ``burst`` units, as GCRA.

    ``tat`` (theoretical arrival time) is when the bucket would be full again; a send of cost
    c may go at ``tat - burst/rate`` and moves ``tat`` on by ``c/rate``. Reservations are made
    in arrival order, so waiting callers are released evenly spaced.
    """

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self.tat = -math.inf

    def reserve(self, cost: float, now: float) -> float:
        """Reserve ``cost`` units; how long to wait before sending (0 if none)."""
        tat = max(self.tat, now)
        allowed_at = tat + cost / self.rate - self.burst / self.rate
        self.tat = tat + cost / self.rate
        return max(0.0, allowed_at - now)

    def adjust(self, delta: float) -> None:
        """Correct an earlier reservation by ``delta`` units (actual minus estimated cost)."""
        if self.tat != -math.inf:
            self.tat += delta / self.rate

    def set_rate(self, rate: float, now: float) -> None:
        # Re-express the backlog at the new rate so pending reservations are not lost.
        if self.tat != -math.inf and self.tat > now:
            self.tat = now + (self.tat - now) * self.rate / rate
        self.rate = rate


class RateLearner:
    """Learns a request rate from 429s when none was configured.

    It measures the rate of accepted requests over the last ``horizon`` seconds. The first
    429 it is told of sets the rate to ``margin`` of that measure; later ones cut it by
    ``decrease`` and remember the refused rate. While pacing is what holds callers back and
    calls succeed, the rate grows: fast (``recover`` of itself per second) back to ``margin``
    of the refused rate, then it holds until ``probe_interval`` has passed and probes slowly
    (``probe`` per second); the interval doubles each time a probe is refused. A first
    measure taken over less than the horizon may be far too low, so it sets no refused rate
    and growth stays fast until a 429 gives one. ``rate`` is None until a 429 teaches one.
    """

    def __init__(self, *, horizon: float, margin: float, decrease: float, recover: float,
                 probe: float, floor: float, probe_interval: float,
                 max_probe_interval: float, hold: float) -> None:
        self.horizon = horizon
        self.hold = hold
        self.cut_at = -math.inf
        self.margin = margin
        self.decrease = decrease
        self.recover = recover
        self.probe = probe
        self.floor = floor
        self.base_interval = probe_interval
        self.max_interval = max_probe_interval
        self.interval = probe_interval
        self.rate: float | None = None
        self.refused: float | None = None
        self.probe_at = -math.inf
        self._accepted: deque[float] = deque()
        self._first: float | None = None
        self._last_growth: float | None = None
        self._pause_end = -math.inf

    def on_sent(self, now: float) -> None:
        if self._first is None:
            self._first = now

    def note_pause(self, until: float) -> None:
        """Sends are paused until ``until`` (a Retry-After): rates are measured after it."""
        self._pause_end = until

    def on_accepted(self, now: float) -> None:
        self._accepted.append(now)
        self._trim(now)

    def measured(self, now: float, *, since_cut: bool) -> tuple[float, bool] | None:
        """Accepted requests per second over the horizon (or only since the last cut), and
        whether a whole horizon of sending backs the figure."""
        self._trim(now)
        if self._first is None:
            return None
        since = max(self._first, now - self.horizon)
        if self._pause_end <= now:
            # Time spent paused on the server's word says nothing of the rate it accepts.
            since = max(since, self._pause_end)
        if since_cut:
            since = max(since, self.cut_at)
        count = sum(1 for t in self._accepted if t >= since)
        if count == 0:
            return None
        span = now - since
        # Divide by at least a fifth of a second: a burst allowance answered in a few
        # milliseconds would otherwise read as a huge rate.
        return count / max(span, 0.2), now - self._first >= self.horizon

    def on_throttled(self, now: float) -> float | None:
        """A 429 that is news: the new rate (None if unchanged)."""
        # A server's token bucket that we emptied stays empty for a while even once we send
        # under its rate, so the 429s just after a cut are the old excess, not news.
        if now < self.cut_at + self.hold:
            return None
        measured = self.measured(now, since_cut=self.rate is not None)
        if self.rate is None:
            if measured is None:
                return None
            value, full = measured
            self.rate = max(self.floor, value * self.margin)
            self.refused = value if full else None
        else:
            again = self.refused is not None and self.rate >= self.refused * self.margin
            self.interval = (
                min(self.max_interval, self.interval * 2) if again else self.base_interval
            )
            self.refused = self.rate
            self.rate *= self.decrease
            # What the server accepted since the last cut is what it gives now: after a drop
            # in its limit, go there at once rather than by several cuts, and remember that,
            # not the rate we sent at, as the level it refused.
            if measured is not None and measured[0] < self.refused:
                self.refused = measured[0]
                self.rate = min(self.rate, measured[0] * self.margin)
            self.rate = max(self.floor, self.rate)
        self.probe_at = now + self.interval
        self.cut_at = now
        self._last_growth = now
        return self.rate

    def cap_at_measured(self, now: float) -> float | None:
        """The concurrency limit was cut: cap the rate at what the server accepted, so that
        the next concurrency probe cannot double the send rate at a stroke. Under a pure
        concurrency limit the cap sits at what the server gives anyway and soon grows out of
        the way; under a rate limit it is where rate learning starts. The new rate, or None."""
        measured = self.measured(now, since_cut=False)
        if self._first is None or now - self._first < self.horizon / 2:
            return None  # too early to tell a limit from a burst allowance
        if measured is None or (self.rate is not None and self.rate <= measured[0]):
            return None
        self.rate = max(self.floor, measured[0])
        # What the server gave is a level to hold at and probe above later, not one to race
        # past: that is what the cut concurrency limit just did.
        self.refused = self.rate
        self.probe_at = now + self.interval
        self._last_growth = now
        return self.rate

    def on_success_paced(self, now: float) -> float | None:
        """A success while pacing held callers back: the grown rate, or None if unchanged."""
        if self.rate is None:
            return None
        last = self._last_growth if self._last_growth is not None else now
        elapsed = now - last
        if elapsed <= 0:
            return None
        self._last_growth = now
        if self.refused is None:
            self.rate *= 1.0 + self.recover * elapsed
        elif self.rate < self.refused * self.margin:
            self.rate = min(self.refused * self.margin, self.rate * (1.0 + self.recover * elapsed))
        elif now < self.probe_at:
            return None
        else:
            self.rate *= 1.0 + self.probe * elapsed
            if self.rate > self.refused:
                self.refused = None  # the refused rate now succeeds: forget it
        return self.rate

    def _trim(self, now: float) -> None:
        while self._accepted and self._accepted[0] < now - self.horizon:
            self._accepted.popleft()


class RetryBudget:
    """Retries may add at most ``ratio`` of the first attempts, plus a trickle of
    ``floor_per_second`` so that a quiet client can still retry at all.

    A token bucket: each first attempt deposits ``ratio``, time deposits the floor, a retry
    withdraws 1; at most ``capacity`` tokens are saved up. The AWS SDKs' retry quota and
    Envoy's retry budget are the models.
    """

    def __init__(self, *, ratio: float, floor_per_second: float, initial: float,
                 capacity: float, now: float) -> None:
        self.ratio = ratio
        self.floor_per_second = floor_per_second
        self.capacity = capacity
        self.tokens = min(initial, capacity)
        self._at = now

    def on_first_attempt(self, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + self.ratio)

    def try_spend(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.floor_per_second)
        self._at = now
