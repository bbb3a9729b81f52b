"""The seam between a client and its limiter: what a limiter promises (:class:`LimiterProtocol`,
:class:`PermitProtocol`) and what it reports (:class:`LimiterState`, :class:`ModelState`).

Two implementations meet here: the process-local :class:`~comet_sync._rate.limiter.Limiter`
and ``contrib.redis.RedisLimiter``, shared by processes. The contract, beyond the signatures:

* ``acquire`` returns a permit only when the request may leave now; it waits (never holding a
  lock across the wait) or raises :class:`~comet_sync.LimiterTimeoutError` naming what held it
  when that would take longer than ``timeout``; a deferral by the throttle or the retry quota
  never lasts past ``max_wait`` (then ``outage=True``).
* A wait for a slot or a turn inside ``acquire`` ends when the ``scope`` it was given stops
  (``close()``, a stopped ``map``), raising what ``scope.raise_if_stopped()`` raises, and
  takes no slot. (A timed sleep, for a hold or the pace, is the bound clock's: the client's
  default sleep is cut short by a stop too.)
* Every permit is released exactly once, with what came back (status, whether it was a 429,
  the server's rate headers, the tokens used), from any thread; a second release is a no-op.
* ``state()`` is a snapshot, safe to read from any thread while calls run.
* ``after_fork()`` is called in a forked child before its first call: nothing of the parent's
  (threads, sockets, locks held) may be used there.

``tests/test_limiter_contract.py`` runs the same checks against both.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .._cancel import Scope
from .._clock import Clock
from .._http.headers import ServerWord
from .evidence import LimitState

__all__ = [
    "LimiterProtocol",
    "LimiterState",
    "ModelState",
    "PermitProtocol",
    "SharedPace",
    "takes_scope",
]


@dataclass(frozen=True)
class ModelState:
    """One model's rate control, for ``client.metrics.snapshot().limiter.models``.

    ``rate`` is the pace in requests/s now in force and ``rate_source`` where it came from
    (``"configured"``, ``"header"``, ``"learned"``; None: no pacing); ``tpm`` likewise for
    tokens. ``noise_share`` is set when 429s were shown not to be about our rate.
    """

    concurrency_limit: int
    in_flight: int
    rate: float | None
    rate_source: str | None
    tpm: float | None
    tpm_source: str | None
    held_for: float  # seconds left of a hold on the server's word, 0 when none
    throttled: int  # 429s answered
    cuts: int  # times the pace or the concurrency limit was lowered
    deferred: int  # sends held back by the throttle or the retry quota, then tried again
    retry_tokens: float | None
    noise_share: float | None
    # What the rate headers told, per unit: the family, the window taken and whether the
    # server's own numbers confirmed it (only a confirmed one paces).
    limits: tuple[LimitState, ...] = ()
    waiting: int = 0  # sends waiting their turn to be let out (held, paced or queued)


@dataclass(frozen=True)
class LimiterState:
    """What the limiter is doing, for ``client.metrics.snapshot().limiter`` and dashboards.

    The top-level figures add up the lanes: ``concurrency_limit`` is the lowest lane limit
    (``max_concurrency`` when no model has been used), ``learned_rate`` the lowest learned pace.
    """

    max_concurrency: int
    concurrency_limit: int
    in_flight: int
    learned_rate: float | None
    rpm: float | None
    tpm: float | None
    held_for: float  # the longest hold on the server's word left on any model, 0 when none
    holds: int  # holds begun
    cuts: int
    retry_tokens: float | None
    deferred: int  # sends deferred by the throttle or the retry quota
    models: Mapping[str, ModelState] | None = None

    # The names these had before they were aligned with ModelState's (issue 22): kept one
    # release, with a DeprecationWarning, so a dashboard reading them keeps working meanwhile.
    @property
    def cooling_down_for(self) -> float:
        _renamed("cooling_down_for", "held_for")
        return self.held_for

    @property
    def cooldowns(self) -> int:
        _renamed("cooldowns", "holds")
        return self.holds

    @property
    def retries_refused(self) -> int:
        _renamed("retries_refused", "deferred")
        return self.deferred


def _renamed(old: str, new: str) -> None:
    warnings.warn(
        f"LimiterState.{old} is deprecated: read LimiterState.{new} (the name ModelState uses)",
        DeprecationWarning,
        stacklevel=3,
    )


class PermitProtocol(Protocol):
    """One request's leave to be on the wire."""

    @property
    def held(self) -> bool: ...

    def release(
        self,
        status: int | None = None,
        *,
        throttled: bool = False,
        word: ServerWord | None = None,
        total_tokens: int | None = None,
    ) -> None: ...


class LimiterProtocol(Protocol):
    """What a client needs of a limiter: the local :class:`Limiter` and ``RedisLimiter``.

    ``acquire`` waits until a request of ``model`` may be sent and returns its permit, or raises
    :class:`LimiterTimeoutError` (naming what held it) when that would take longer than
    ``timeout``. ``retry_cost`` is 0 for a first attempt and for a 429 retry (those pass the
    pacing a 429 just tightened) and the quota's price for any other retry.

    ``scope`` is the stop scope of the call asking (its client's, or its ``map``'s): while
    it waits, a limiter wakes when the scope stops (``scope.on_stop``) and raises what
    ``scope.raise_if_stopped()`` raises, so ``close()`` never waits on a held send. None: no
    call asks (nothing to watch). A keyword with a default, so a limiter written before it
    existed still fits: the client passes it only to an ``acquire`` that takes it.
    """

    def bind(self, *, clock: Clock, max_hold: float) -> None: ...

    def acquire(
        self,
        model: str | None = None,
        *,
        cost: float = 0.0,
        timeout: float | None = None,
        retry_cost: float = 0.0,
        scope: Scope | None = None,
    ) -> PermitProtocol: ...

    def paces_tokens(self, model: str | None) -> bool: ...

    @property
    def in_use(self) -> int: ...

    def state(self) -> LimiterState: ...

    def after_fork(self) -> None: ...


class SharedPace(Protocol):
    """Where a local :class:`~comet_sync._rate.limiter.Limiter` meets a pace shared by the
    processes of one quota (``contrib.redis``): the local limiter finds and grows the pace from
    its own answers, in the quota's units, and hands it over; the shared side spaces every
    process's sends by it and tells the local limiter of a pace another process set
    (``Limiter.adopt_pace``).
    """

    @property
    def told(self) -> bool:
        """Whether the shared side also paces by a rate the user told (a lone 429 is then
        jitter at its edge, as under a local ``rpm``)."""
        ...

    def scale(self, model: str | None) -> float:
        """How many requests the whole quota sent per one of ours lately (1.0: ours alone).
        Called under the local limiter's lock: no I/O."""
        ...

    def took(self, model: str | None) -> int | None:
        """How many of the whole quota's sends over the last second the server took (not
        refused), as of our last send; None if we sent none lately. Called under the local
        limiter's lock: no I/O."""
        ...

    def publish(self, model: str | None, rate: float | None, *, measured: bool) -> None:
        """The pace the local limiter now keeps (None: none). ``measured``: found from 429s,
        news that replaces any pace; else grown by probing, which yields to a pace another
        process set meanwhile. Called with no lock held."""
        ...


def takes_scope(limiter: LimiterProtocol) -> bool:
    """Whether ``limiter.acquire`` takes ``scope=`` (a keyword added to the protocol later;
    a limiter a user wrote before it is still called, without it). Asked once per client."""
    try:
        params = inspect.signature(limiter.acquire).parameters
    except (TypeError, ValueError):  # no signature to read (a C callable): assume the old one
        return False
    return "scope" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
