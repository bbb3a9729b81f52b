"""The cap: whether a model's 429s mean a concurrency cap, and the in-flight limit that follows.

A server refuses for one of two reasons, and each wants its own answer. A *rate* limit refuses
at every in-flight level alike (the pace is the fix, found by ``RateFinder``); a *concurrency
cap* refuses only above some level, while the requests sent at or under it succeed (cutting
the in-flight limit is the fix, and pacing would only slow the calls the cap lets through).
:class:`ConcurrencyCap` tells them apart from the levels requests were sent at:

* **the typical level** is the in-flight level 90% of recent successes were sent at or under
  (unknown until ``MIN_SUCCESSES`` have come back);
* **a cap** when a 429 came above the typical level and so did most recent 429s
  (``CAP_SHARE``): 429s about rate come at every level, a cap's only above it;
* **the cut rule** (:meth:`ConcurrencyCap.cut_to`, the one statement of it, which the shared
  limit on Redis applies too): the limit falls to the typical level, never below 1, never up;
* **once per round trip**: 429s of one burst come back together, the cut's effect only after a
  round trip (the smoothed time successes take on the wire), so one burst cuts once.

The limit itself (slow start, regrowth, slow probing after a cut) is the arithmetic of
:class:`~comet_sync._rate.policies.Concurrency`, which this policy owns.

Pure: no locks (the limiter's lock guards it), no clock of its own (times are arguments), no
I/O, so the tests drive it with exact times.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .policies import Concurrency

__all__ = ["CapCut", "ConcurrencyCap"]

# Successes whose send levels are kept, and how many must have come back before the typical
# level is known (fewer say nothing about where a cap sits).
SUCCESSES_KEPT = 100
MIN_SUCCESSES = 10
# The share of successes sent at or under the typical level.
TYPICAL_SHARE = 0.9
# 429s whose levels are kept, and the share of them above the typical level that shows a cap.
REFUSALS_KEPT = 20
CAP_SHARE = 0.7
# Each new success's time on the wire weighs this much in the smoothed round trip (TCP's SRTT).
ROUND_TRIP_WEIGHT = 0.125


@dataclass(frozen=True)
class CapCut:
    """A 429 judged to come from a concurrency cap: the limit went from ``before`` to
    ``after`` (equal when it was already under the cap, or a cut this round trip already
    answered the burst)."""

    before: int
    after: int

    @property
    def fell(self) -> bool:
        return self.after != self.before


class ConcurrencyCap:
    """One model's in-flight limit and the evidence that says whether 429s are about it.

    ``adaptive`` False: the limit stays at ``ceiling`` (the client's ``max_concurrency``) and
    no 429 is judged a cap; the round trip is still measured.
    """

    def __init__(self, ceiling: int, *, initial: int, adaptive: bool = True) -> None:
        self.adaptive = adaptive
        self.limit = Concurrency(ceiling, initial=initial if adaptive else ceiling)
        self.round_trip = 0.0  # a success's time on the wire, smoothed
        self._ok_levels: deque[int] = deque(maxlen=SUCCESSES_KEPT)  # in flight at send
        self._refused_levels: deque[int] = deque(maxlen=REFUSALS_KEPT)

    @property
    def effective(self) -> int:
        """The in-flight limit now in force."""
        return self.limit.effective

    @staticmethod
    def level(at_send: int, in_flight: int) -> int:
        """The level a request was answered at: the lane was full if it was when the request
        left or when its answer came back (requests taken one by one see 1, 2, 3 at send, yet
        all filled the limit together). ``in_flight`` counts the request itself."""
        return max(at_send, in_flight)

    def typical_level(self) -> int:
        """The in-flight level ``TYPICAL_SHARE`` of recent successes were sent at or under
        (0: unknown)."""
        if len(self._ok_levels) < MIN_SUCCESSES:
            return 0
        ranked = sorted(self._ok_levels)
        return ranked[int(len(ranked) * TYPICAL_SHARE)]

    # -- the evidence alone: what a shared limit (contrib.redis) asks of this policy ----------

    def note_success(self, at_send: int, sent_at: float, now: float) -> None:
        """A success sent with ``at_send`` in flight: its level and its time on the wire."""
        self._ok_levels.append(at_send)
        rtt = now - sent_at
        if self.round_trip == 0.0:
            self.round_trip = rtt
        else:
            w = ROUND_TRIP_WEIGHT
            self.round_trip = (1 - w) * self.round_trip + w * rtt

    def judge(self, level: int) -> int | None:
        """A 429 answered at ``level``: the typical level when it shows a concurrency cap (the
        limit goes there, by :meth:`cut_to`), None when it is about rate or nothing is known
        yet. Refused above the level nearly every success had, as most recent refusals were:
        a cap (429s about rate come at every level)."""
        typical = self.typical_level()
        self._refused_levels.append(level)
        above = sum(1 for refused in self._refused_levels if refused > typical)
        if typical and level > typical and above >= CAP_SHARE * len(self._refused_levels):
            return typical
        return None

    @staticmethod
    def cut_to(limit: float, typical: int) -> float:
        """The cut rule: a cap's 429 brings ``limit`` down to the typical level of successes,
        never below 1 and never up."""
        return float(max(1, min(int(limit), typical)))

    # -- the local limit: the evidence and the Concurrency arithmetic together --------------

    def on_success(
        self, at_send: int, in_flight: int, limit_at_send: int, sent_at: float, now: float
    ) -> bool:
        """A success sent at ``sent_at`` with ``at_send`` in flight under a limit of
        ``limit_at_send``, answered at ``now`` with ``in_flight`` (itself included). True if
        the limit grew."""
        self.note_success(at_send, sent_at, now)
        if not self.adaptive:
            return False
        return self.limit.on_success(self.level(at_send, in_flight), limit_at_send, sent_at, now)

    def on_throttled(self, at_send: int, in_flight: int, now: float) -> CapCut | None:
        """A 429 answered at ``now``. A :class:`CapCut` when it shows a concurrency cap (the
        pace is then left alone); None when it is about rate (or nothing is known yet)."""
        if not self.adaptive:
            return None  # a fixed limit: 429s are the pacing's business alone
        typical = self.judge(self.level(at_send, in_flight))
        if typical is None:
            return None
        before = self.effective
        if now - self.limit.cut_at >= self.round_trip:
            # Concurrency.cut steps under the level it is given: one above the typical level
            # lands on cut_to's answer, and restarts its probing from there.
            self.limit.cut(typical + 1, now)
        return CapCut(before, self.effective)
