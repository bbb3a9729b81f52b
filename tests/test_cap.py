"""The cap policy (``comet_sync/_rate/cap.py``) on exact times: whether 429s show a
concurrency cap, where the limit is cut to, and how often."""

from __future__ import annotations

from comet_sync._rate.cap import CapCut, ConcurrencyCap
from comet_sync._rate.policies import Concurrency


def taught(levels: list[int], *, ceiling: int = 16, rtt: float = 0.5) -> ConcurrencyCap:
    """A cap policy whose successes were sent at ``levels`` (in that order), each ``rtt`` on
    the wire, one every second from t=0."""
    cap = ConcurrencyCap(ceiling, initial=ceiling)
    for i, level in enumerate(levels):
        cap.on_success(level, level, ceiling, float(i), float(i) + rtt)
    return cap


def test_the_typical_level_is_unknown_before_ten_successes() -> None:
    cap = taught([1, 2, 3] * 3)
    assert cap.typical_level() == 0
    # ...so no 429 can be judged a cap yet: it is the rate finder's.
    assert cap.on_throttled(12, 12, 100.0) is None
    assert cap.effective == 16
    cap.on_success(1, 1, 16, 9.0, 9.5)
    assert cap.typical_level() == 3


def test_the_typical_level_is_what_nine_successes_in_ten_were_sent_at_or_under() -> None:
    assert taught([2] * 18 + [9] * 2).typical_level() == 9  # 18 of 20: the 90% point is a 9
    assert taught([2] * 19 + [9]).typical_level() == 2  # 19 of 20 at 2: one outlier


def test_a_429_above_the_typical_level_cuts_to_it() -> None:
    cap = taught([1, 2, 3, 4] * 5)  # typical 4
    cut = cap.on_throttled(7, 7, 30.0)
    assert cut == CapCut(before=16, after=4) and cut.fell
    assert cap.effective == 4


def test_the_level_answered_at_counts_when_higher_than_at_send() -> None:
    # Sent as the second of a burst (level 2) while six went out together: refused at 6.
    cap = taught([1, 2, 3] * 4)
    assert cap.on_throttled(2, 6, 30.0) == CapCut(before=16, after=3)


def test_429s_at_every_level_are_about_rate_not_a_cap() -> None:
    cap = taught([1, 2, 3, 4] * 5)  # typical 4
    assert cap.on_throttled(2, 2, 30.0) is None  # at a level successes had: rate
    assert cap.on_throttled(3, 3, 30.1) is None
    # One above, after two at ordinary levels: 1 of 3 above, under the 70% a cap shows.
    assert cap.on_throttled(8, 8, 30.2) is None
    assert cap.effective == 16


def test_one_burst_cuts_once_per_round_trip() -> None:
    cap = taught([1, 2, 3] * 4, rtt=0.5)  # round trip 0.5 s, typical 3
    assert cap.round_trip == 0.5
    assert cap.on_throttled(9, 9, 30.0) == CapCut(16, 3)
    # The same burst's 429s, within a round trip of the cut: judged a cap, not cut again.
    cap.limit.limit = 8.0  # as if the limit had grown back meanwhile
    assert cap.on_throttled(9, 9, 30.49) == CapCut(8, 8)
    # A round trip later, news: cut again.
    assert cap.on_throttled(9, 9, 30.5) == CapCut(8, 3)


def test_the_round_trip_is_smoothed_as_tcp_does() -> None:
    cap = ConcurrencyCap(8, initial=8)
    cap.on_success(1, 1, 8, 0.0, 1.0)
    assert cap.round_trip == 1.0  # the first is taken as it is
    cap.on_success(1, 1, 8, 1.0, 3.0)
    assert cap.round_trip == 0.875 * 1.0 + 0.125 * 2.0


def test_the_limit_grows_back_by_the_concurrency_policy_after_a_cut() -> None:
    cap = taught([1, 2, 3] * 4, ceiling=8, rtt=0.5)
    cap.on_throttled(6, 6, 20.0)
    assert cap.effective == 3
    # Successes at the limit before the probe time (1 s after the cut) do not grow it.
    assert not cap.on_success(3, 3, 3, 20.1, 20.6)
    assert cap.effective == 3
    # After it, one step per window of successes at the limit (+1/limit each): 3 + 1/3 +
    # 1/3.33 + 1/3.63 is 3.9, and the fourth success makes it 4.
    grown = [cap.on_success(3, 3, 3, 21.0 + i, 21.5 + i) for i in range(4)]
    assert grown == [False, False, False, True] and cap.effective == 4


def test_a_fixed_limit_is_never_cut_nor_grown() -> None:
    cap = ConcurrencyCap(8, initial=2, adaptive=False)
    assert cap.effective == 8  # no slow start: the ceiling from the first send
    for i in range(20):
        cap.on_success(2, 2, 8, float(i), float(i) + 0.5)
    assert cap.on_throttled(8, 8, 30.0) is None
    assert cap.effective == 8


def test_the_cut_rule_is_what_the_concurrency_policy_does() -> None:
    # cut_to is the rule the shared limit on Redis applies; the local limit gets there through
    # Concurrency.cut. The two agree for every limit and typical level.
    for ceiling in range(1, 12):
        for typical in range(1, 14):
            local = Concurrency(ceiling, initial=ceiling)
            local.cut(typical + 1, 0.0)
            assert ConcurrencyCap.cut_to(float(ceiling), typical) == local.limit
    assert ConcurrencyCap.cut_to(6.7, 9) == 6.0  # never up
    assert ConcurrencyCap.cut_to(4.0, 0) == 1.0  # never under one
