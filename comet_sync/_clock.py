"""The sources of time and chance: one :class:`Clock`, handed to everything that waits or draws.

The call path, the limiters (ours and the Redis one), the caches and :func:`deadline` read time
only through a clock, so a test that injects a fake one checks every wait and every budget
exactly, without waiting.
"""

from __future__ import annotations

import random as _random
import time
from typing import Callable

__all__ = ["SYSTEM_CLOCK", "Clock"]


class Clock:
    """``monotonic()`` for durations and deadlines, ``wall()`` for dates a server sends (epoch
    seconds), ``sleep(seconds)``, ``random()`` in [0, 1). Immutable; shared by every thread."""

    __slots__ = ("monotonic", "random", "sleep", "wall")

    monotonic: Callable[[], float]
    sleep: Callable[[float], None]
    random: Callable[[], float]
    wall: Callable[[], float]

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        object.__setattr__(self, "monotonic", monotonic)
        object.__setattr__(self, "sleep", sleep)
        object.__setattr__(self, "random", random or _random.Random().random)
        object.__setattr__(self, "wall", wall)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Clock is immutable")

    def __repr__(self) -> str:
        real = self.monotonic is time.monotonic
        return f"<Clock {'system' if real else 'injected'}>"


SYSTEM_CLOCK = Clock()
