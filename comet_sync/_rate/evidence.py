"""What a server's rate headers show about its limit, judged by the server's own numbers.

A rate header names a count (``x-ratelimit-limit-requests: 50``) but not the window it counts
over: OpenAI means a minute, refilled continuously; Azure enforces the same minute over 1 s or
10 s; Groq's requests header counts a day; mock servers, proxies and many gateways count per
their own window, often a second. Read as "per minute", a per-second server is paced 60 times
too slowly, with no 429 to say so. So the window a family names is only assumed, and the
window that paces is read off the counters:

* **The longest reset is a floor on the window.** Whatever a server counts (a bucket refilled
  continuously, whose ``reset`` is the time until full; a sliding window, until it clears or
  until its oldest entry leaves; a fixed window, until it ends), no reset it reports is longer
  than its window. So ``limit / longest reset`` is a rate the server sustains at least: a pace
  read this way can err fast (a 429 or a spent answer then corrects it), never slow. A reset
  written in whole seconds counts a second less.
* **Confirmed by the count.** The window paces once the server has said its quota is nearly
  spent (``remaining`` at most ``NEAR_SPENT`` of the limit) while what it admitted of ours over
  that window is about the limit: the counter falls by what we send, in the limit's unit. A
  counter never seen above half its limit counts in another unit (a per-second count under a
  per-minute limit): its own scale, the most it has shown, stands for the limit then, as it
  does when no limit is sent. It paces from the time the quota is nearly spent
  until it has room again (half the limit left): room is there to use.
* **Disproved by the count.** More admitted within the named window than its limit allows
  (by ``OVER``) disproves it: "50 per minute" is dropped as soon as a minute holds 65.
* **Expiry.** A quota that ``SILENT_ANSWERS`` answers in a row no longer carry is forgotten:
  a told pace ends when the answers stop telling it.

Where the headers cannot be misread they act at once, confirmed or not: ``remaining`` below
one with a ``reset`` ahead holds the model until the reset (the limiter caps it at
``max_wait``). Otherwise, until a window is confirmed, the rate is found from 429s as it is
for a server that sends no headers.

Pure: no locks (the limiter's lock guards it), no clock of its own, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .._http.headers import Quota

__all__ = ["HeaderEvidence", "LimitState"]

# A quota this close to spent (remaining at most this share of the limit) shows its window.
NEAR_SPENT = 0.25
# A longest reset within this share of the window the family names is taken as that window.
SNAP = 0.05
# More than the limit admitted within the named window, by this share plus two (answers racing
# the count), disproves it.
OVER = 0.25
# Answers in a row without the quota after which its word expires.
SILENT_ANSWERS = 3
# How far back our own admitted sends are counted (a window longer than this is judged on what
# it holds of the last RECENT seconds), and how many are kept at most.
RECENT = 120.0
ADMITTED_KEPT = 20_000
# A window shorter than this is no window (a reset read in the instant a unit came back).
MIN_WINDOW = 0.05


ASSUMED, CONFIRMED, DROPPED = "assumed", "confirmed", "dropped"


@dataclass(frozen=True)
class LimitState:
    """One told limit of a model, for ``snapshot().limiter.models[m].limits``.

    ``unit`` "requests" or "tokens"; ``source`` the header family ("openai", "anthropic",
    "ietf"); ``limit`` the count the counter counts down from (the limit header's, or, when
    there is none or it counts another unit, the most ``remaining`` has shown); ``window``
    the seconds it is taken to count over; ``status`` "assumed" (the family's convention, or
    the longest reset seen, not yet borne out by the count: it paces nobody), "confirmed" (the
    count bore it out: it paces while the quota is nearly spent) or "dropped" (the named
    window was disproved and no reset has said another).
    """

    unit: str
    source: str | None
    limit: float | None
    window: float | None
    status: str

    @property
    def rate(self) -> float | None:
        """Units per second when confirmed; None otherwise."""
        if self.status != CONFIRMED or self.limit is None or not self.window:
            return None
        return self.limit / self.window


class HeaderEvidence:
    """One quota (requests or tokens) of one model, as its headers have shown it."""

    source: str | None
    limit: float | None
    named: float | None  # the window the family's convention names
    named_stated: bool  # stated by the server (IETF's w=), not merely its family's convention
    named_disproved: bool
    remaining: float | None
    reset: float | None
    longest_reset: float
    seen_full: bool
    most_remaining: float
    confirmed: bool
    pacing: bool  # nearly spent since it last had room (half the limit left)
    _admitted: deque[tuple[float, float]]

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.silent = 0
        self._forget()

    # -- what came back ----------------------------------------------------------------------

    def observe(self, quota: Quota | None, source: str | None, now: float) -> str | None:
        """An answer's quota for this unit (None: the answer carried none). Returns what
        changed, for the log, when a window is confirmed or disproved."""
        if quota is None:
            # The latest answer says nothing of the quota: no pace, no hold on its word now;
            # what was learned is kept a few answers more (one answer from a backend that
            # sends no headers is no reason to start over).
            self.remaining = self.reset = None
            self.silent += 1
            if self.silent >= SILENT_ANSWERS and self.source is not None:
                was = self.confirmed
                self._forget()
                if was:
                    return f"{self.unit}: the headers stopped; their pace ends"
            return None
        self.silent = 0
        if quota.limit is not None and quota.limit < 1:
            # Less than one request (or token) per window is no limit anyone can keep to: a
            # server sending it is broken, and believing it would stop the client for good.
            quota = Quota(None, quota.remaining, quota.reset, quota.window, quota.reset_resolution)
        if quota.limit is not None and quota.limit != self.limit:
            if self.limit is not None or (self.source is not None and source != self.source):
                self._forget()  # a new limit (a plan change, another family): start over
            self.limit, self.named = quota.limit, quota.window
            self.named_stated = quota.window_stated
        self.source = source
        self.remaining, self.reset = quota.remaining, quota.reset
        if quota.reset is not None:
            floor = quota.reset - quota.reset_resolution
            if floor >= MIN_WINDOW and floor > self.longest_reset:
                self.longest_reset = floor
        if quota.remaining is not None:
            self.most_remaining = max(self.most_remaining, quota.remaining)
            if self.limit is not None and quota.remaining >= 0.5 * self.limit:
                self.seen_full = True
        return self._judge(now)

    def admitted(self, sent_at: float, units: float, now: float) -> str | None:
        """One of our requests was admitted (a 2xx), costing ``units``."""
        if units <= 0 or self.source is None:
            return None
        self._admitted.append((sent_at, units))
        while self._admitted and self._admitted[0][0] <= now - RECENT:
            self._admitted.popleft()
        return self._disprove_named(now)

    # -- what it says ------------------------------------------------------------------------

    @property
    def window(self) -> float | None:
        """The window taken: once confirmed, or once the named one is disproved, what the
        resets measure; before, the one the family names (assumed, pacing nobody)."""
        if self.confirmed or self.named_disproved or self.named is None:
            return self.measured_window
        return self.named

    @property
    def measured_window(self) -> float | None:
        """The longest reset seen (the named window when within ``SNAP`` of it), or None;
        with no usable reset, a window the server stated (never a family's convention)."""
        longest = self.longest_reset or None
        named = None if self.named_disproved else self.named
        if named is None:
            return longest
        if longest is None:
            return named if self.named_stated else None
        return named if abs(longest - named) <= SNAP * named else longest

    @property
    def count(self) -> float | None:
        """What the counter counts down from: the limit, when the counter has come near it;
        else (no limit sent, or a limit in another unit than the counter, as an RPM beside a
        per-second count) the most the counter has shown, plus the request that showed it."""
        if self.limit is not None and self.seen_full:
            return self.limit
        if self.most_remaining >= 1:
            return self.most_remaining + 1
        return None

    @property
    def near_spent(self) -> bool:
        count = self.count
        return (
            count is not None
            and self.remaining is not None
            and self.remaining <= NEAR_SPENT * count
        )

    @property
    def rate(self) -> float | None:
        """The pace to keep now: the confirmed rate, from the time the quota is nearly spent
        until it has room again (half its limit left): room is there to use, and a pace that
        keeps the quota nearly spent is the one that binds."""
        return self.state().rate if self.pacing else None

    def spent_for(self, now: float) -> float | None:
        """Seconds the quota is out for (``remaining`` under one with a reset ahead), or None.

        Until the reset, whatever the kind of window: what comes back before it differs by
        kind (a bucket a unit at a time, a sliding window as its entries leave, a fixed window
        all at its end), and a hold to the reset, then a burst of what came back, keeps every
        kind at its rate where sends in between would be refused. But no later than the first
        of our own sends in the measured window leaves it: a sliding window that says "until
        clear" has room again from then on."""
        if self.remaining is None or self.reset is None or self.remaining >= 1 or self.reset <= 0:
            return None
        window = self.measured_window
        if window is not None and window <= RECENT:
            for at, _ in self._admitted:
                if at > now - window:
                    return max(0.0, min(self.reset, at + window - now))
        return self.reset

    def state(self) -> LimitState:
        window = self.window
        if self.confirmed and window is not None:
            status = CONFIRMED
        elif window is None and self.named_disproved:
            status = DROPPED
        else:
            status = ASSUMED
        return LimitState(self.unit, self.source, self.count, window, status)

    # -- internals ---------------------------------------------------------------------------

    def _forget(self) -> None:
        self.source = None
        self.limit = None
        self.named = None
        self.named_stated = False
        self.named_disproved = False
        self.remaining = None
        self.reset = None
        self.longest_reset = 0.0
        self.seen_full = False
        self.most_remaining = 0.0
        self.confirmed = False
        self.pacing = False
        self.silent = 0
        self._admitted = deque(maxlen=ADMITTED_KEPT)

    def _count(self, window: float, now: float) -> float:
        since = now - window
        total = 0.0
        for at, units in reversed(self._admitted):
            if at <= since:
                break
            total += units
        return total

    def _judge(self, now: float) -> str | None:
        """Confirm the window when the count bears it out (see the module docstring)."""
        message = self._disprove_named(now)
        window, limit = self.measured_window, self.count
        if self.near_spent:
            self.pacing = True
        elif limit is not None and self.remaining is not None and self.remaining >= 0.5 * limit:
            self.pacing = False  # room again (a window that cleared, a bucket refilled)
        if window is None or limit is None or not self.near_spent:
            return message
        admitted = self._count(min(window, RECENT), now)
        if window <= RECENT and admitted < (1 - NEAR_SPENT) * limit - 2:
            return message  # the counter fell by more than we sent: not our count, or not yet
        if not self.confirmed:
            self.confirmed = True
            return f"{self.unit}: {limit:g} per {window:.3g}s confirmed by the counters"
        return message

    def _disprove_named(self, now: float) -> str | None:
        if self.named is None or self.named_disproved or self.limit is None:
            return None
        admitted = self._count(min(self.named, RECENT), now)
        if admitted <= self.limit * (1 + OVER) + 2:
            return None
        self.named_disproved = True
        longest = f"{self.longest_reset:.3g}s" if self.longest_reset else "nothing"
        return (
            f"{self.unit}: {admitted:g} admitted within {self.named:.3g}s, over the limit of "
            f"{self.limit:g} per {self.named:.3g}s: that reading is disproved; the longest "
            f"reset seen ({longest}) is taken instead"
        )
