"""The per-model pace shared by every process of a ``RedisLimiter`` namespace (issue 24).

Each process finds and grows the pace from its own answers, as it would alone
(``_rate/policies.py``), but in the quota's units: its share of what the server accepted is
scaled by how many requests the whole namespace sent per one of its own. The shared side, here
and in the scripts (``_redis_scripts``), does three things:

* **spaces every process's sends** of a model by the pace in Redis (GCRA on Redis's clock, in
  the acquire script, beside ``rpm``): N processes send the pace, not N times it;
* **counts the namespace's sends** of each model: each grant returns how many the namespace
  made over the last second and were not refused (a 429's release takes its send out), so a
  process knows what share of what the server took was its own (:meth:`SharedPaceBoard.scale`);
* **hands a pace over**: a pace measured on 429s replaces the shared one; a pace grown by
  probing replaces it only if nobody moved it meanwhile (else the grower takes theirs), so N
  processes probing grow it once, not N times over. A process that sees a pace set elsewhere
  takes it (``Limiter.adopt_pace``): its first requests are already paced, and its next 429 is
  measured from there.

The pace is forgotten once nobody has used the model for ``ADAPTIVE_STATE_TTL``.

What is not shared: paces told by rate headers (each process reads them off its own answers,
without a 429 to pay) and holds on a spent budget (a long ``Retry-After`` pauses everyone
already, see ``redis.py``).

Thread safety: ``_lock`` guards ``_grants`` and ``_seen``; no lock is held across a Redis call.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from .._rate.protocol import SharedPace

__all__ = ["SharedPaceBoard"]

# A process's share of the sends is read over this long: the window a 429's measure spans.
SHARE_WINDOW = 1.0
# A grown pace is handed over when it has moved by this share since the last one, or after
# this long: growth comes in small steps with every paced success, each a round trip.
GROWN_STEP = 0.02
GROWN_EVERY = 0.5
# A pace seen in Redis is taken when it differs from the last one by more than this share.
SAME = 0.01
# Beyond this many models, those not sent to lately are forgotten (the local limiter keeps as
# many lanes).
MAX_MODELS = 256
# Model names longer than this are hashed in key names.
LONGEST_NAME = 100


class SharedPaceBoard:
    """This process's side of the shared pace: its grants, and the pace it last saw."""

    def __init__(
        self,
        *,
        namespace: str,
        script: Any,
        ttl: float,
        told: bool,
        monotonic: Callable[[], float],
        adopt: Callable[[str | None, float], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._namespace = namespace
        self._script = script  # the registered PUBLISH_PACE script
        self._ttl_ms = int(ttl * 1000)
        self._told = told
        self.monotonic = monotonic
        self._adopt = adopt  # the local limiter's adopt_pace
        self._on_error = on_error
        self._lock = threading.Lock()
        # model -> (when, the namespace's sends over the second before, lease) of our grants
        # over SHARE_WINDOW that were not refused
        self._grants: dict[str | None, deque[tuple[float, int, str]]] = {}
        # model -> (the pace last seen in or written to Redis, when it was written by us)
        self._seen: dict[str | None, tuple[float, float]] = {}

    def keys(self, model: str | None) -> list[str]:
        """The model's keys: its pace, its schedule (GCRA), its count of sends."""
        name = model or ""
        if len(name) > LONGEST_NAME:
            name = "#" + hashlib.sha256(name.encode()).hexdigest()
        return [f"{self._namespace}:{kind}:{name}" for kind in ("pace", "ptat", "sent")]

    def granted(self, model: str | None, recent: int, lease: str = "") -> None:
        """A send of ours granted; ``recent``: the namespace's sends over the last second that
        were not refused, as Redis counted them with this one."""
        now = self.monotonic()
        with self._lock:
            grants = self._grants.setdefault(model, deque())
            grants.append((now, recent, lease))
            while grants and grants[0][0] < now - SHARE_WINDOW:
                grants.popleft()
            if len(self._grants) > MAX_MODELS:
                # Models not sent to for a second say nothing of a share: forgotten.
                for key in [k for k, g in self._grants.items() if g[-1][0] < now - SHARE_WINDOW]:
                    del self._grants[key]

    def refused(self, model: str | None, lease: str) -> None:
        """A send of ours refused (429): it leaves our count of sends, as it leaves the
        namespace's (the release script), so the share is of what the server took: while it
        refuses, refusals fall unevenly on the processes (a share of sends read 2-4 for 4 equal
        processes, and paces of 25-74/s were read off 50/s)."""
        with self._lock:
            grants = self._grants.get(model)
            if grants is None:
                return
            for i, grant in enumerate(grants):
                if grant[2] == lease:
                    del grants[i]
                    return

    def taken(self, model: str | None, pace: float) -> bool:
        """The shared pace read at a grant: whether it is news to take (not the one we last
        saw or wrote)."""
        if pace <= 0:
            return False
        with self._lock:
            last = self._seen.get(model)
            if last is not None and abs(last[0] - pace) <= SAME * pace:
                return False
            self._seen[model] = (pace, last[1] if last is not None else -float("inf"))
            return True

    # -- SharedPace --------------------------------------------------------------------------

    @property
    def told(self) -> bool:
        return self._told

    def scale(self, model: str | None) -> float:
        now = self.monotonic()
        with self._lock:
            grants = [g for g in self._grants.get(model, ()) if g[0] >= now - SHARE_WINDOW]
        if not grants:
            return 1.0
        # As of our last send: the namespace's sends over the second before it, per one of ours
        # in that second (both without those refused).
        at, recent, _ = grants[-1]
        ours = sum(1 for g in grants if g[0] >= at - SHARE_WINDOW)
        return max(1.0, recent / ours)

    def took(self, model: str | None) -> int | None:
        now = self.monotonic()
        with self._lock:
            grants = self._grants.get(model)
            if not grants or grants[-1][0] < now - SHARE_WINDOW:
                return None
            return grants[-1][1]

    def publish(self, model: str | None, rate: float | None, *, measured: bool) -> None:
        if rate is None:
            return  # stopped pacing here (noise): the others keep theirs, see adopt_pace
        now = self.monotonic()
        with self._lock:
            seen, written = self._seen.get(model, (0.0, -float("inf")))
        if not measured and abs(rate - seen) < GROWN_STEP * rate and now - written < GROWN_EVERY:
            return
        # Measured: replaces any. Grown: only from the pace we last saw (-1: none seen, so only
        # if there is none).
        base = 0.0 if measured else (seen if seen > 0 else -1.0)
        try:
            current = float(
                self._script(
                    keys=self.keys(model)[:1],
                    args=[repr(rate), repr(base), self._ttl_ms],
                )
            )
        except Exception as exc:  # whatever went wrong, the local pace stands: no call fails
            self._on_error(exc)
            return
        with self._lock:
            self._seen[model] = (current, now)
        if abs(current - rate) > SAME * rate:
            self._adopt(model, current)  # another process moved it while we grew: theirs


if TYPE_CHECKING:
    # mypy --strict checks here that the board stays what a Limiter accepts as shared=.

    def _is_shared_pace(board: SharedPaceBoard) -> SharedPace:
        return board
