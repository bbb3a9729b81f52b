"""Rate-control policies: pure state machines on an explicit clock, with no locks and no sleeps.

The limiter (``limiter.py``) keeps one set per model, guards them with its lock, and does the
waiting. Keeping the arithmetic here lets the tests drive each policy with exact times.

* :class:`Concurrency` — the in-flight limit: slow start that doubles per round trip, a cut
  only for 429s that behave like a concurrency cap, regrowth and slow probing.
* :class:`Pacer` — a token bucket kept as a theoretical arrival time (GCRA): each send reserves
  its cost and is told how long to wait, so callers are spaced evenly instead of released in
  bursts. Used for configured and told ``rpm``/``tpm`` and for a learned request rate.
* :class:`RateFinder` — finds the request rate a server accepts when nobody says it, from the
  rate of successes while the server refuses, and tells 429s that are about rate from 429s
  that are not (an upstream that is saturated whatever we send).
* :class:`RetryQuota` — the AWS SDKs' standard retry quota: a retry pays, a retry that
  succeeds is refunded, so retries that heal are never refused.
* :class:`AdaptiveThrottle` — Google SRE's client-side throttling: when the server accepts
  less than half of what is sent, hold sends back in proportion, so an outage is not met with
  a storm.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["AdaptiveThrottle", "Concurrency", "Pacer", "RateFinder", "RetryQuota"]


class Concurrency:
    """The effective in-flight limit of one model, between 1 and ``ceiling``.

    It starts at ``initial`` and grows by one for every success whose request was sent while
    the limit was in use, which doubles it each round trip (TCP's slow start): a fresh client
    reaches a ceiling of 64 from 4 in four round trips when nothing refuses it. A 429 on a
    request sent while the limit was full cuts it to just under that level; it then grows
    back one step per window of successes after ``probe_interval``, and
    a probe refused at the same level doubles the interval (up to ``max_probe_interval``).
    """

    def __init__(
        self,
        ceiling: int,
        *,
        initial: int,
        probe_interval: float = 1.0,
        max_probe_interval: float = 16.0,
    ) -> None:
        self.ceiling = ceiling
        self.limit = float(max(1, min(initial, ceiling)))
        self.slow_start = True
        self.refused_level: int | None = None
        self.base_interval = probe_interval
        self.max_interval = max_probe_interval
        self.interval = probe_interval
        self.probe_at = -math.inf
        self.cut_at = -math.inf

    @property
    def effective(self) -> int:
        return max(1, int(self.limit))

    def cut(self, level: int, now: float) -> bool:
        """A 429 answered a request sent with ``level`` in flight (the limit full): step under
        that level. True if the limit fell."""
        again = self.refused_level is not None and level >= self.refused_level
        self.interval = min(self.max_interval, self.interval * 2) if again else self.base_interval
        self.refused_level = level
        self.probe_at = now + self.interval
        self.cut_at = now
        self.slow_start = False
        before = self.effective
        self.limit = float(max(1, min(self.effective, level - 1)))
        return self.effective != before

    def on_success(self, level: int, limit_at_send: int, sent_at: float, now: float) -> bool:
        """A success sent with ``level`` in flight under a limit of ``limit_at_send``; True if
        the effective limit grew."""
        # Grow only when the limit was in use when this request left: a limit of 32 that never
        # sees more than 3 in flight has proved nothing about 32.
        if self.limit >= self.ceiling or level < limit_at_send:
            return False
        if self.refused_level is not None and level >= self.refused_level and sent_at > self.cut_at:
            self.refused_level = None  # the refused level now succeeds: a risen cap
        before = self.effective
        if self.slow_start:
            self.limit += 1.0
        elif now < self.probe_at:
            return False
        else:
            self.limit += 1.0 / self.limit  # one step per window of successes
        self.limit = min(float(self.ceiling), self.limit)
        return self.effective != before


class Pacer:
    """A token bucket of ``rate`` units per second and ``burst`` units, as GCRA.

    ``tat`` (theoretical arrival time) is when the bucket would be full again; a send of cost
    c may go at ``tat - burst/rate`` and moves ``tat`` on by ``c/rate``. The limiter asks
    :meth:`wait` and spends with :meth:`take` only when the wait is over, so that callers
    already waiting follow a new rate at once (a reservation made before a cut would keep
    the old spacing; one made before a rise would wait too long).
    """

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self.tat = -math.inf

    def wait(self, cost: float, now: float) -> float:
        """How long until ``cost`` units may go (0: now). A cost above the burst waits only
        for a full bucket and leaves a debt, rather than waiting for ever."""
        tat = max(self.tat, now)
        return max(0.0, tat + (min(cost, self.burst) - self.burst) / self.rate - now)

    def take(self, cost: float, now: float) -> None:
        """Spend ``cost`` units now (after :meth:`wait` said 0)."""
        self.tat = max(self.tat, now) + cost / self.rate

    def adjust(self, delta: float) -> None:
        """Correct an earlier reservation by ``delta`` units (actual minus estimated cost)."""
        if self.tat != -math.inf:
            self.tat += delta / self.rate

    def set_rate(self, rate: float, now: float) -> None:
        # Re-express the backlog at the new rate so pending reservations are not lost.
        if self.tat != -math.inf and self.tat > now:
            self.tat = now + (self.tat - now) * self.rate / rate
        self.rate = rate


_OK, _THROTTLED = 1, 2
# A window with at least this share of 429s kept the server full: what it accepted is its rate.
SATURATED_SHARE = 0.1


class RateFinder:
    """Finds the request rate a server accepts, from its answers alone.

    The measure: while a server keeps refusing, its allowance is spent, so every request it
    accepts meanwhile was paid for by its refill. Successes sent during a run of refusals
    (since the first 429 after a quiet second, and since the last measure), divided by its
    length, are the server's rate — whatever kind of window, bucket or cap it keeps, and
    without any header. A run shorter than ``min_span`` is too short to measure: the very first
    429 halves what was sent (unless it carries a ``Retry-After`` and nothing sent before it
    was accepted: that says nothing of a rate), and later ones wait for the run to grow. A
    lone 429 after a quiet second is a probe that crept past the limit: the pace goes back to
    ``margin`` of the pace refused. Each 429 is judged once per round trip, and only for a
    request paced after the last change (an older one was spaced by a pace already answered).

    While pacing holds callers back and nothing is refused, the rate grows: quickly
    (``recover`` of itself per second) up to ``margin`` of the last rate found, then, after a
    hold that doubles each time a probe is refused at the same level, slowly (``probe`` per
    second), so a limit that rose is found again.

    Not every 429 is about rate: an upstream that is saturated refuses a share of requests
    whatever we send. A cut made on a measure should end the refusals; when, twice in a row,
    the share of 429s after it is still at least half the share before it, the 429s are noise:
    pacing stops, and 429s are ignored while their share stays near that level.
    """

    def __init__(
        self,
        *,
        margin: float = 0.97,
        min_span: float = 0.25,
        window: float = 1.0,
        recover: float = 1.0,
        probe: float = 0.05,
        hold: float = 2.0,
        max_hold: float = 16.0,
        floor: float = 0.1,
        quiet: float = 1.0,
        min_samples: int = 10,
    ) -> None:
        self.margin = margin
        self.min_samples = min_samples
        self.min_span = min_span
        self.window = window
        self.recover = recover
        self.probe = probe
        self.base_hold = hold
        self.max_hold = max_hold
        self.hold = hold
        self.floor = floor
        self.quiet = quiet
        self.rate: float | None = None  # the pace, requests/s; None: not pacing
        self.found: float | None = None  # the last rate measured under refusal
        self.noise_share: float | None = None  # share of 429s shown not to be about rate
        self._noise_measured = 0.0  # noise_share when the noise was found
        self._outcomes: deque[tuple[float, int]] = deque()  # (sent_at, _OK or _THROTTLED)
        self._first_sent: float | None = None
        self._sends: deque[float] = deque()  # send times over the last window
        self._period: float | None = None  # send time of the first 429 of this period
        self._provisional = False  # the rate found was measured over less than a window
        self._measured_at = -math.inf  # when the rate found was last measured
        self._failed_tests = 0  # cuts in a row after which the share of 429s did not fall
        self._round_trip = 0.0
        self._changed_at = -math.inf  # 429s of requests sent before this are old news
        self._last_429 = -math.inf
        # (cut at, share of 429s before it, the pace it set), to check
        self._test: tuple[float, float, float] | None = None
        self._probe_at = -math.inf
        self._grown_at: float | None = None
        self._refused_pace: float | None = None  # the pace of the last change on a 429
        # A first pace measured over a whole-second Retry-After: (the guess it replaced, when,
        # until when the server said it had no room); see ``on_accepted``.
        self._rounded: tuple[float, float, float] | None = None

    # -- what came back ------------------------------------------------------------------------

    def on_sent(self, now: float) -> None:
        if self._first_sent is None:
            self._first_sent = now
        self._sends.append(now)
        while self._sends[0] < now - self.window:
            self._sends.popleft()

    def on_accepted(self, sent_at: float, now: float) -> float | None:
        """A success: the new pace if it voids a measure (see ``rounded``), else None."""
        self._outcomes.append((sent_at, _OK))
        self._trim(now)
        if self._rounded is None:
            return None
        guess, since, until = self._rounded
        if sent_at >= until:
            self._rounded = None  # the server had no room before its Retry-After: it stands
            return None
        if sent_at < since:
            return None  # sent before the refusal, in the same burst: says nothing of it
        # Room before the Retry-After we measured over: it was rounded up (a token bucket's
        # 20 ms, said as 1 s), and the measure with it. Pace by the first guess instead.
        self._rounded = None
        self.found = None
        self._provisional = False
        # The next measure starts here: the hold sent next to nothing, and measured across
        # it a 60/s bucket read 19/s (then grew back at 20%/s for 4 s).
        self._measured_at = now
        return self._set(guess, now, test=False)

    def rounded(self, now: float) -> bool:
        """Whether the pace stands on a whole-second Retry-After not yet borne out: until it
        passes, the model holds, with a probe now and then (the limiter's ``_hold``); a probe
        the server accepts voids the measure."""
        return self._rounded is not None and now < self._rounded[2]

    def on_throttled(
        self,
        sent_at: float,
        now: float,
        round_trip: float = 0.0,
        told: bool = False,
        retry_after: float | None = None,
        scale: float = 1.0,
        pending: int = 0,
        quota_took: int | None = None,
    ) -> float | None:
        """A 429 for a request sent at ``sent_at``: the new pace, or None if unchanged
        (``math.inf``: stop pacing).
        ``round_trip`` is how long a success takes: a change is judged after one. ``told``:
        the server or the user gave a rate, so a lone refusal is jitter, not news.
        ``retry_after``: the wait the server asked of this request, if it asked one.
        ``scale``: how many requests the whole quota sent per one of ours lately (processes
        sharing a pace, ``contrib.redis``): what we saw accepted and sent is our share of
        what the server did, and the pace found is the quota's. ``pending``: our other
        requests still unanswered (a burst's successes come back after its first 429).
        ``quota_took``: how many of the whole quota's sends over the last second the server
        took (``contrib.redis``), a floor on a measure."""
        self._outcomes.append((sent_at, _THROTTLED))
        self._trim(now)
        self._round_trip = round_trip
        # Every 429, news or not, belongs to the current period of refusals; one that follows a
        # quiet second starts a new period (a probe refused, or a limit that fell).
        quiet = sent_at - self._last_429
        self._last_429 = max(self._last_429, sent_at)
        if quiet > self.quiet:
            self._period = sent_at
            # A probe refused at the same level waits longer before the next one.
            again = (
                self.found is not None
                and self.rate is not None
                and (self.rate >= self.found * self.margin)
            )
            self.hold = min(self.max_hold, self.hold * 2) if again else self.base_hold
        if sent_at < self._changed_at:
            return None  # spaced by an older pace: that pace was already answered
        if now - self._changed_at < round_trip:
            # 429s come back at once, successes after a round trip: react once per round trip
            # (as TCP does), or a few instant refusals cut the pace many times over.
            return None
        if self.noise_share is not None:
            # Over twice the window: the share over one second of a few dozen answers swings
            # far around the noise's own (30% came out anywhere from 18% to 45%).
            share = self._share(now - 2 * self.window, at_least=30)
            if share is None:
                return None
            if share <= _noise_band(self.noise_share):
                # Still the noise: follow its level, so a first estimate made on few answers
                # does not mistake the noise itself for a limit on top of it. Within a band
                # around the level first measured: followed freely, a share that rises step
                # by step (a limit on top of the noise) would be followed up to any height.
                followed = self.noise_share + 0.2 * (share - self.noise_share)
                low, high = self._noise_measured / 1.5, self._noise_measured * 1.5
                self.noise_share = min(high, max(low, followed))
                return None
            self.noise_share = None  # a real limit on top of the noise
        if self._test is not None:
            noise = self._check_noise(now)
            if noise is not None:
                return noise
            if self._test is not None:
                return None  # the last cut's verdict is not in yet: wait for it
        self._probe_at = now + self.hold
        measure = self._accepted_rate(now, round_trip)
        if measure is not None:
            measured, whole = measure[0] * scale, measure[1]
            if quota_took is not None and quota_took / self.window > measured:
                # What the whole quota had taken over the last second, counted in Redis, is a
                # floor, and a whole window's: our share of it, read while refused, is low
                # (our callers are the ones asleep on Retry-Afters; 4 processes on 50/s read
                # 21-40/s).
                measured, whole = quota_took / self.window, True
            measure = (measured, whole, measure[2])
        sent = self._send_rate(now) * scale
        if measure is None and self.rate is not None and self.found is None:
            # Only a guess paces, and the refusals come in runs too short to measure: every
            # caller asleep on a whole-second Retry-After between them (a sliding window of
            # 50/s, 32 callers: 50 taken and 32 refused each second, while the guess grew to
            # 500/s). The most the server took in any window of our sends bounds its rate
            # from above; pace by it once the guess has grown to twice past it. (Sooner, it
            # took the place of measures that came: 10-11% of 429s became 13-17% on a small
            # token bucket.)
            busiest = self._busiest_window(now, round_trip)
            if busiest is not None and 2 * busiest * scale < self.rate:
                measure = (busiest * scale, True, SATURATED_SHARE)
        # What we were really sending: the pace, unless something else (a concurrency limit,
        # too few callers) kept the sends well under it.
        pace = sent if self.rate is None or sent < 0.9 * self.rate else self.rate
        if measure is None and self.rate is None:
            # Too little has come back to measure. At the first refusal, halve what was sent
            # (unless a rate was told: then it is jitter); then wait for a measure.
            if told:
                return None
            if retry_after is not None and not self._accepted_before(sent_at):
                # A rate limit refuses after accepting what was sent before (its allowance).
                # With nothing earlier accepted these 429s say nothing of a rate (each call's
                # first attempts refused, a Retry-After convoy, or a budget someone else
                # spent), and the server's Retry-After already spaces this request's retry: a
                # pace would only delay other calls' first attempts into a refusal. (Without
                # a Retry-After the halving stays: retries would come straight back, and
                # nothing else damps them before a first answer is in - a concurrency cap
                # answered 3% of jobs with 429s with it, 30% without.)
                return None
            guess = max(self.floor, pace * 0.5)
            if retry_after is not None:
                # The server took what it accepted since our first success and has no room
                # until the Retry-After: that many over that span is the best measure there
                # is. On a sliding window it is the limit (25 of 25/s), where half what we had
                # sent was 4x it. A Retry-After in whole seconds may be 0.02 s rounded up
                # (over its span a token bucket's 60/s read as 8/s): such a measure stands
                # only if the server has no room before it (``rounded``, ``on_accepted``).
                # (With what is still out: a 429 comes back at once, the burst's successes
                # after their latency; without them 30 of 30/s read as 19/s.)
                oks = [t for t, o in self._outcomes if o == _OK]
                span = now + retry_after - min(oks)
                taken = (len(oks) + pending) * scale / span if span > 0 else math.inf
                if taken < guess:
                    self.found = taken
                    self._provisional = True  # a lower bound: probed past, as one
                    self._measured_at = now
                    if not precise(retry_after):
                        self._rounded = (guess, now, now + retry_after)
                    return self._set(max(self.floor, self.found * self.margin), now, test=False)
            return self._set(guess, now, test=False)
        if measure is None and self._period != sent_at:
            return None  # refusals keep coming, but too little to measure yet: wait for it
        # (Or a lone refusal after a quiet second: a probe that crept past the limit.)
        measured, whole, share = measure if measure is not None else (pace, False, 0.0)
        if share < SATURATED_SHARE and told:
            return None  # a rate was told: a refusal now and then is jitter at its edge
        if share < SATURATED_SHARE:
            # Refused now and then while mostly accepted: we were not filling the server, so
            # what it accepted is our own pace, and the pace refused is the best bound on its
            # limit (a probe that crept past it, or a limit that moved under it).
            if self.rate is not None and pace < self.rate:
                # Sent below the pace (too few callers to fill it): no probe crept past
                # anything. Cutting to what was sent would ratchet the pace down with every
                # refusal on a server that refuses at any pace (each job's first attempts, a
                # Retry-After convoy); a limit that really fell refuses in runs, which the
                # measure below answers.
                return None
            self.found = pace
            self._provisional = False  # a refusal at this level confirms it
            target = max(self.floor, self.found * self.margin)
            if self.rate is not None and self.rate <= target:
                return None
            # Put to the test like a measured cut: a server that refuses a share of requests
            # whatever the pace would otherwise ratchet it down 3% a refusal, for ever.
            self._refused_pace = pace
            return self._set(target, now, test=True)
        # A measure over less than a whole window may miss part of a server's window (and
        # one across a stretch we sent nothing may miss what it would have accepted): pace
        # by it, but probe past it sooner and faster until a whole window confirms it.
        if self.rate is not None and measured * self.margin > self.rate:
            # Refused at this pace, a measure that would raise it is misread (sharing the
            # quota, a share of 16 once read 117/s off 50/s): the pace refused bounds it.
            measured = self.rate / self.margin
        self.found = measured
        self._provisional = not whole
        self._measured_at = now
        self._refused_pace = pace
        return self._set(max(self.floor, measured * self.margin), now, test=True, share=share)

    def _accepted_rate(self, now: float, round_trip: float) -> tuple[float, bool, float] | None:
        """Successes per second over the last ``window`` whose answers are back, by send
        time, whether a whole window backs it, and the share of 429s in it; None if too few
        to say. Over a window at least as long as the server's own (a second, commonly), the
        rate accepted while it refuses is its limit, whatever kind of limit it keeps."""
        end = now - round_trip  # later sends are still on the wire
        # From the start of this period of refusals: before it the server had room (a burst
        # allowance, or a higher limit before a drop), which is not its rate now.
        first = self._period if self._period is not None else end
        # And since the last measure: what came before it was answered by that measure (a
        # limit that fell meanwhile must not be averaged with the time before).
        start = max(first, self._measured_at, end - self.window)
        if end - start < self.min_span:
            return None  # too short a stretch: a few requests either way would swing it
        answered = [(t, o) for t, o in self._outcomes if start <= t <= end]
        accepted = sum(1 for _, o in answered if o == _OK)
        if accepted < self.min_samples // 2:
            return None
        whole = end - first >= self.window and not self._gap(answered, start, end)
        return accepted / (end - start), whole, 1.0 - accepted / len(answered)

    def _busiest_window(self, now: float, round_trip: float) -> float | None:
        """The most successes (by send time) any ``window`` held over the last two whose
        answers are back, per second; None before we have sent for a whole window or with too
        few successes to say. Never below the server's rate over a window we kept it busy."""
        end = now - round_trip
        if self._first_sent is None or self._first_sent > end - self.window:
            return None
        oks = sorted(t for t, o in self._outcomes if o == _OK and end - 2 * self.window <= t <= end)
        if len(oks) < self.min_samples:
            return None
        best, first = 0, 0
        for last, t in enumerate(oks):
            while oks[first] <= t - self.window:
                first += 1
            best = max(best, last - first + 1)
        return best / self.window

    def _gap(self, answered: list[tuple[float, int]], start: float, end: float) -> bool:
        """Whether we sent nothing for a while in ``[start, end]``: longer than a tenth of the
        window, and than three of our usual intervals there. Whatever the server would have
        accepted then was not asked of it (callers asleep on a Retry-After), so a rate
        measured across it is a lower bound: a sliding window's slots came back unasked."""
        allowed = max(0.1 * self.window, 3.0 * (end - start) / len(answered))
        last = start
        for sent_at in sorted(t for t, _ in answered):  # kept in the order answers came
            if sent_at - last > allowed:
                return True
            last = sent_at
        return end - last > allowed

    def on_success_paced(self, now: float) -> float | None:
        """A success while this pace held callers back: the grown rate, or None."""
        if self.rate is None:
            return None
        last = self._grown_at if self._grown_at is not None else now
        elapsed = now - last
        self._grown_at = now
        if elapsed <= 0:
            return None
        if self._test is not None and self.rate > self._test[2] * 1.5:
            self._test = None  # grown far past the cut under test: its refusals do not tell
        if self.found is None:
            # Nothing measured yet: the first reaction was a guess; grow back fast.
            self.rate *= 1.0 + 2.0 * self.recover * elapsed
            return self.rate
        target = self.found * self.margin
        if self.rate < target:
            self.rate = min(target, self.rate * (1.0 + self.recover * elapsed))
        elif self._provisional and (
            self._refused_pace is None or self.rate < self._refused_pace * self.margin
        ):
            # Up to just under the last pace refused, no faster: a sliding window measured
            # over less than a second reads low, and grown past the pace it refused at 20%/s,
            # 54.6/s and 45.3/s took turns on 50/s (5-6% of requests refused).
            self.rate *= 1.0 + self.recover * 0.2 * elapsed
            if self._refused_pace is not None:
                self.rate = min(self.rate, self._refused_pace * self.margin)
        elif now >= self._probe_at:
            self.rate *= 1.0 + self.probe * elapsed
        else:
            return None
        return self.rate

    def adopt(self, rate: float, now: float) -> None:
        """Pace at ``rate``, a pace another process sharing the quota found or grew to: it
        grows from there (probing, as past a rate of its own found), and a 429 of a request sent
        before a lower pace is old news."""
        if self.rate is None or rate < self.rate:
            self._changed_at = now
        self.rate = rate
        self.found = rate / self.margin
        self._rounded = None  # the quota's pace, measured over whole windows, not ours
        # Probed past slowly: grown fast from a measure of ours, every process's pace went
        # back over the one just measured within a second (48.5/s to 60-73/s on 50/s).
        self._provisional = False
        self._grown_at = now

    # -- internals ---------------------------------------------------------------------------

    def _check_noise(self, now: float) -> float | None:
        assert self._test is not None
        cut_at, before, _ = self._test
        after = [o for t, o in self._outcomes if t >= cut_at][:30]
        if len(after) < 12:
            return None
        self._test = None
        refused = after.count(_THROTTLED)
        share = refused / len(after)
        if refused < 3 or (share < max(0.1, 0.5 * before) and _fell(before, share, len(after))):
            # The cut worked: these are the last of the excess, or a probe. (A fall chance
            # explains is not one: on 30% noise, 46% before and 3 of 16 after passed for it.)
            self._failed_tests = 0
            return None
        if _rose(before, share, len(after)):
            # Refused more after the cut than before it, past what chance explains: noise
            # keeps its level, so this is a limit that fell while it was measured (the measure
            # straddled the fall and the cut fell short). Not evidence of noise; the next 429
            # measures again.
            self._failed_tests = 0
            return None
        # Sending slower did not lower the share of refusals. Once may be a limit that fell
        # while we measured; twice in a row, they are not about our rate.
        self._failed_tests += 1
        if self._failed_tests < 2:
            return None
        self._failed_tests = 0
        # Over sends whose answers are all back (429s come back faster than successes).
        settled = [o for t, o in self._outcomes if t <= now - self._round_trip][-100:]
        self.noise_share = settled.count(_THROTTLED) / len(settled) if settled else share
        self._noise_measured = self.noise_share
        self.found = None
        self.rate = None  # pacing cannot help with refusals that are not about rate
        self._changed_at = now
        return math.inf

    def _set(self, rate: float, now: float, *, test: bool, share: float = 0.0) -> float:
        if test:
            # A cut made on a measure is put to the test: did the share of 429s fall? Before
            # it: the last answers, or the measure's own window if that refused more (the last
            # answers to arrive are the 429s and the early successes, not a fair sample).
            recent = [o for _, o in list(self._outcomes)[-30:]]
            if len(recent) >= 10:
                before = max(share, recent.count(_THROTTLED) / len(recent))
                self._test = (now, before, rate)
        self.rate = rate
        self._changed_at = now
        self._grown_at = now
        return rate

    def _accepted_before(self, sent_at: float) -> bool:
        return any(o == _OK and t <= sent_at for t, o in self._outcomes)

    def _share(self, since: float, at_least: int = 10) -> float | None:
        recent = [o for t, o in self._outcomes if t >= since]
        if len(recent) < at_least:
            return None
        return recent.count(_THROTTLED) / len(recent)

    def _send_rate(self, now: float) -> float:
        first = self._first_sent if self._first_sent is not None else now
        # At least min_span: in the first moments a handful of sends would read as a huge
        # rate, and the first reaction is better too low (it grows back fast) than too high.
        span = min(self.window, max(now - first, self.min_span))
        return sum(1 for t in self._sends if t >= now - span) / span

    def _trim(self, now: float) -> None:
        # Keep what a run of refusals can still measure, bounded in time.
        horizon = now - max(self.window, self.quiet) * 4
        while self._outcomes and self._outcomes[0][0] < horizon:
            self._outcomes.popleft()


def precise(retry_after: float | None) -> bool:
    """Whether a server's wait is given finer than whole seconds (``retry-after-ms``, a
    fraction): only then does it say when the server has room again, not just roughly."""
    return retry_after is not None and retry_after > 0 and retry_after != int(retry_after)


def _noise_band(share: float) -> float:
    """The highest share of 429s still taken for noise at ``share``: a share over a few dozen
    answers swings far around its mean (30% came out anywhere from 18% to 45%)."""
    return share * 1.5 + 0.1


def _rose(before: float, after: float, answers: int, before_answers: int = 30) -> bool:
    """Whether a share of 429s rose from ``before`` to ``after`` (over ``answers``) beyond
    what chance explains: a two-proportion test at three standard errors. Over a dozen
    answers chance alone moves a share a long way (14% before, 33% after, on pure noise)."""
    return after - before > 3.0 * _spread(before, after, answers, before_answers)


def _fell(before: float, after: float, answers: int, before_answers: int = 30) -> bool:
    """Whether a share of 429s fell from ``before`` to ``after`` beyond what chance explains,
    at two standard errors."""
    return before - after > 2.0 * _spread(before, after, answers, before_answers)


def _spread(before: float, after: float, answers: int, before_answers: int) -> float:
    """The standard error of the difference of two shares, under the hypothesis that both
    are one share (pooled)."""
    pooled = (before * before_answers + after * answers) / (before_answers + answers)
    return math.sqrt(pooled * (1.0 - pooled) * (1.0 / answers + 1.0 / before_answers))


class RetryQuota:
    """The AWS SDKs' standard retry quota.

    A retry withdraws ``cost`` (``timeout_cost`` after a timeout or a broken connection); a
    retry that succeeds gives its cost back, and a first attempt that succeeds adds one. So
    retries that heal never drain the quota, and only a run of failures, an outage, does.
    ``refill_per_second`` lets a quiet client regain retries even with nothing succeeding.
    """

    def __init__(
        self,
        *,
        capacity: float = 500.0,
        cost: float = 5.0,
        timeout_cost: float = 10.0,
        refill_per_second: float = 1.0,
        now: float = 0.0,
    ) -> None:
        self.capacity = capacity
        self.cost = cost
        self.timeout_cost = timeout_cost
        self.refill = refill_per_second
        self.tokens = capacity
        self._at = now

    def try_withdraw(self, amount: float, now: float) -> bool:
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def deposit(self, amount: float, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + amount)

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.refill)
        self._at = now


class AdaptiveThrottle:
    """Client-side adaptive throttling (Google SRE, "Handling Overload").

    Counts of requests sent and of requests the server accepted decay with a ``half_life``, so
    the picture is recent. A send is held back with probability
    ``max(0, (requests - k * accepts) / (requests + 1))``: nothing while the server accepts
    more than 1/k of what is sent, nearly everything in an outage — yet a trickle still goes
    out, and its successes reopen the way within moments of the server's return. Below
    ``min_requests`` recent requests nothing is held: one caller's run of failures is its
    retries' business, not an outage.
    """

    def __init__(
        self,
        *,
        k: float = 2.0,
        half_life: float = 2.0,
        min_requests: float = 10.0,
        now: float = 0.0,
    ) -> None:
        self.k = k
        self.min_requests = min_requests
        self.decay = math.log(2) / half_life
        self.requests = 0.0
        self.accepts = 0.0
        self._at = now

    def hold_probability(self, now: float) -> float:
        self._age(now)
        if self.requests < self.min_requests:
            return 0.0  # a few failures of one caller are not an outage
        return max(0.0, (self.requests - self.k * self.accepts) / (self.requests + 1.0))

    def on_result(self, accepted: bool, now: float) -> None:
        self._age(now)
        self.requests += 1.0
        if accepted:
            self.accepts += 1.0

    def _age(self, now: float) -> None:
        if now > self._at:
            factor = math.exp(-self.decay * (now - self._at))
            self.requests *= factor
            self.accepts *= factor
        self._at = now
