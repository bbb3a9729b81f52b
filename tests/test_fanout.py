"""The one fan-out under ``map`` and batches, driven directly on a thread pool: what a stop does
to jobs held back by ``ahead`` and to jobs queued in the executor (the mix neither driver
reaches alone: ``map`` holds jobs back, a batch stops)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from comet_sync._fanout import FanOut


def _drain(fan: FanOut[int]) -> list[Future[Any]]:
    """Every future the fan-out hands back, taken on a thread of its own so that a fan-out
    that never ends fails the test instead of hanging it."""
    out: list[Future[Any]] = []
    taker = threading.Thread(target=lambda: out.extend(fan), daemon=True)
    taker.start()
    taker.join(timeout=10)
    assert not taker.is_alive(), "the fan-out never ended"
    return out


def test_a_stop_drops_the_jobs_ahead_held_back_unsent() -> None:
    gate = threading.Event()
    submitted: list[int] = []
    with ThreadPoolExecutor(max_workers=2) as pool:

        def submit(job: int) -> Future[int]:
            submitted.append(job)
            return pool.submit(lambda: gate.wait(10) and job)

        fan = FanOut(submit, range(6), window=6, ahead=1, key=lambda job: "one key")
        fan.fill()
        assert submitted == [0]  # one of the key at a time; five wait in the fan-out
        fan.stop()
        gate.set()
        handed = _drain(fan)
    assert submitted == [0]  # none of the five left after the stop
    assert [f.result() for f in handed] == [0]


def test_a_stop_cancels_what_has_not_started_and_hands_it_back() -> None:
    started = threading.Event()
    gate = threading.Event()

    def work(job: int) -> int:
        started.set()
        gate.wait(10)
        return job

    with ThreadPoolExecutor(max_workers=1) as pool:
        fan = FanOut(lambda job: pool.submit(work, job), range(3), window=3)
        fan.fill()  # job 0 runs; jobs 1 and 2 wait in the pool's queue
        assert started.wait(10)
        fan.stop()
        gate.set()
        handed = _drain(fan)
    # All three come back: the two cancelled, for the driver to read as it must, and the
    # one that ran.
    assert sorted(f.cancelled() for f in handed) == [False, True, True]
    assert [f.result() for f in handed if not f.cancelled()] == [0]
