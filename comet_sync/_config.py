"""Configuration values: frozen, validated once, with every default written down once."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Union

from ._exceptions import CometError, InvalidArgumentError

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientConfig",
    "RetryConfig",
    "Timeout",
    "resolve_api_key",
    "resolve_base_url",
]

DEFAULT_BASE_URL = "https://api.cometapi.com/v1"
# COMETAPI_KEY is the name CometAPI's own guides use; the others are used by third-party
# integrations and are accepted as fallbacks, in this order.
API_KEY_ENV_VARS = ("COMETAPI_KEY", "COMET_API_KEY", "COMETAPI_API_KEY")
BASE_URL_ENV_VAR = "COMETAPI_BASE_URL"

# CometAPI's guide limits concurrency to 5 in its example; 8 keeps a small script quick while
# staying in that range. Batch users raise it, and the limiter lowers it when 429s say so.
DEFAULT_MAX_CONCURRENCY = 8
# Retries wait with the in-flight slot released, so a few more workers than slots keep the
# slots busy while some workers sleep.
DEFAULT_WORKERS_PER_SLOT = 2
# CometAPI's recipe allows 5 attempts with waits of 2^n s + U(0, 1) s. Full jitter waits half as
# long on average, so one more retry fits in about the same total wait.
DEFAULT_MAX_RETRIES = 5
# CometAPI's own cap on a single wait.
DEFAULT_MAX_WAIT = 30.0
# The first full-jitter window; it doubles with each retry up to max_wait.
DEFAULT_BACKOFF_BASE = 1.0
# No official timeout exists; slow reasoning models can think for minutes before the first
# byte, so reads get openai-python's 600 s, while a connect that takes 10 s is already broken.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 600.0
# Caps a whole call, every attempt and wait included, so a retrying call ends.
DEFAULT_TOTAL_TIMEOUT = 900.0

TimeoutArg = Union[float, int, "Timeout", tuple]


@dataclass(frozen=True)
class Timeout:
    """Per-attempt timeouts in seconds, as requests takes them (connect, read)."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    @classmethod
    def coerce(cls, value: TimeoutArg, argument: str = "timeout") -> Timeout:
        """Accept a Timeout, a number (both phases) or a (connect, read) pair."""
        if isinstance(value, Timeout):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            connect, read = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            connect = read = value
        else:
            raise InvalidArgumentError(
                argument, f"expected seconds or a (connect, read) pair, got {value!r}"
            )
        return cls(
            connect=_positive(argument, connect),
            read=_positive(argument, read),
        )


@dataclass(frozen=True)
class RetryConfig:
    """How a call retries. See ``_retry.py`` for what is retried and how waits are chosen."""

    max_retries: int = DEFAULT_MAX_RETRIES
    max_wait: float = DEFAULT_MAX_WAIT
    backoff_base: float = DEFAULT_BACKOFF_BASE
    total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise InvalidArgumentError("max_retries", f"expected an int, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise InvalidArgumentError("max_retries", "must be >= 0")
        _positive("max_wait", self.max_wait)
        _positive("backoff_base", self.backoff_base)
        if self.total_timeout is not None:
            _positive("total_timeout", self.total_timeout)

    def replace(self, **changes: object) -> RetryConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client was built with except the key, which is held apart so that no
    repr, log or copy of the configuration can carry it."""

    base_url: str
    max_concurrency: int
    max_workers: int
    timeout: Timeout
    retry: RetryConfig

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "max_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(name, f"expected an int >= 1, got {value!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidArgumentError(
                "base_url", f"expected an http(s) URL, got {self.base_url!r}"
            )


def resolve_api_key(api_key: str | None) -> str:
    if api_key is None:
        for name in API_KEY_ENV_VARS:
            api_key = os.environ.get(name)
            if api_key:
                break
    if not api_key:
        raise CometError(
            "No API key: pass api_key=... or set the COMETAPI_KEY environment variable."
        )
    if not isinstance(api_key, str):
        raise InvalidArgumentError("api_key", "expected a string")
    return api_key


def resolve_base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get(BASE_URL_ENV_VAR) or DEFAULT_BASE_URL
    return url.rstrip("/")


def _positive(argument: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidArgumentError(argument, f"expected a positive number, got {value!r}")
    return float(value)


# -- rate control ----------------------------------------------------------------------------
# A cut to 0.6 of the limit: CometAPI's 429s mean "send less", and 0.5 (TCP's) undershoots a
# small limit badly (5 -> 2); 0.7 takes more round trips to get under a hard limit.
DEFAULT_DECREASE = 0.6
# The concurrency limit starts here and doubles each round trip (slow start) up to
# max_concurrency: an unknown small limit then costs a few 429s, not max_concurrency of them.
DEFAULT_INITIAL_CONCURRENCY = 4
# After a 429, wait this long before probing above the refused level again; each probe refused
# at the same level doubles the wait, up to the maximum.
DEFAULT_PROBE_INTERVAL = 1.0
DEFAULT_MAX_PROBE_INTERVAL = 16.0
# A learned rate starts this far under what the server was seen to accept...
DEFAULT_RATE_MARGIN = 0.9
# ...is cut by this on each further 429 window...
DEFAULT_RATE_DECREASE = 0.85
# ...at most once in this many seconds (429s just after a cut are the old excess)...
DEFAULT_RATE_HOLD = 0.25
# ...grows back by this fraction of itself per second to just under the refused rate...
DEFAULT_RATE_RECOVER = 1.0
# ...and then probes above it by this fraction per second.
DEFAULT_RATE_PROBE = 0.05
# The accepted rate is measured over this many recent seconds.
DEFAULT_RATE_HORIZON = 2.0
# Configured rpm/tpm allow a burst of this many seconds' worth of sends.
DEFAULT_BURST_SECONDS = 0.1
# After a Retry-After pause, restarts are spread over this fraction of the asked wait...
DEFAULT_COOLDOWN_SPREAD = 1.0
# ...but over no more than this many seconds.
DEFAULT_MAX_COOLDOWN_SPREAD = 2.0
# Retries may add 20% to the load (AWS SDK retry quotas and Envoy retry budgets use similar
# shares), plus one retry every two seconds however quiet the client; a new client may retry
# five times at once, and at most 10 retries are saved up.
DEFAULT_RETRY_RATIO = 0.2
DEFAULT_RETRY_FLOOR_PER_SECOND = 0.5
DEFAULT_RETRY_INITIAL = 5.0
DEFAULT_RETRY_CAPACITY = 10.0
# When the budget refuses a retry, new sends pause this long: in an outage, fresh calls would
# only fail too.
DEFAULT_OUTAGE_PAUSE = 1.0


@dataclass(frozen=True)
class RateControl:
    """How a client finds and follows the server's limits. Every part can be switched off.

    ``adaptive``: cut the concurrency limit on 429s, grow it back while calls succeed.
    ``rpm``/``tpm``: configured ceilings, enforced by pacing (tokens are estimated before a
    call and corrected from ``usage`` after). ``learn_rate``: when 429s come, learn the request
    rate the server accepts and pace to it (under ``rpm`` when that is set too).
    ``cooldown``: a ``Retry-After`` pauses every new send of the client, not only the retrying
    one. ``retry_budget``: retries
    may add at most ``retry_ratio`` of the load; past that a retryable error is raised at once
    and new sends pause for ``outage_pause`` seconds.
    """

    adaptive: bool = True
    decrease: float = DEFAULT_DECREASE
    initial_concurrency: int = DEFAULT_INITIAL_CONCURRENCY
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    max_probe_interval: float = DEFAULT_MAX_PROBE_INTERVAL
    rpm: float | None = None
    tpm: float | None = None
    burst_seconds: float = DEFAULT_BURST_SECONDS
    learn_rate: bool = True
    rate_margin: float = DEFAULT_RATE_MARGIN
    rate_decrease: float = DEFAULT_RATE_DECREASE
    rate_recover: float = DEFAULT_RATE_RECOVER
    rate_hold: float = DEFAULT_RATE_HOLD
    rate_probe: float = DEFAULT_RATE_PROBE
    rate_horizon: float = DEFAULT_RATE_HORIZON
    cooldown: bool = True
    cooldown_spread: float = DEFAULT_COOLDOWN_SPREAD
    max_cooldown_spread: float = DEFAULT_MAX_COOLDOWN_SPREAD
    retry_budget: bool = True
    retry_ratio: float = DEFAULT_RETRY_RATIO
    retry_floor_per_second: float = DEFAULT_RETRY_FLOOR_PER_SECOND
    retry_initial: float = DEFAULT_RETRY_INITIAL
    retry_capacity: float = DEFAULT_RETRY_CAPACITY
    outage_pause: float = DEFAULT_OUTAGE_PAUSE

    def __post_init__(self) -> None:
        for name in ("decrease", "rate_margin", "rate_decrease"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise InvalidArgumentError(name, f"expected a fraction in (0, 1), got {value!r}")
        for name in ("rpm", "tpm"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        value = self.initial_concurrency
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(
                "initial_concurrency", f"expected an int >= 1, got {value!r}"
            )
        for name in ("burst_seconds", "rate_horizon", "retry_capacity", "probe_interval",
                     "max_probe_interval"):
            _positive(name, getattr(self, name))
        for name in ("rate_probe", "rate_recover", "rate_hold", "cooldown_spread",
                     "max_cooldown_spread", "retry_ratio", "retry_floor_per_second",
                     "retry_initial", "outage_pause"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidArgumentError(name, f"expected a number >= 0, got {value!r}")

    @classmethod
    def off(cls) -> RateControl:
        """A fixed limit and nothing else: no adaptation, no pacing, no cooldown, no budget."""
        return cls(adaptive=False, learn_rate=False, cooldown=False, retry_budget=False)
