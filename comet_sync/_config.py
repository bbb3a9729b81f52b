"""Configuration values: frozen, validated once, with every default written down once."""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, Union

from ._exceptions import CometError, InvalidArgumentError

__all__ = [
    "DEFAULT_BASE_URL",
    "CallOptions",
    "ClientConfig",
    "RetryConfig",
    "Timeout",
    "check_headers",
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
# Retries wait with the in-flight slot released, so more workers than slots keep the slots
# busy while some workers sleep: a retry waits 0.5 s on average against tens of milliseconds
# on the wire, and with only 2 per slot a run where every first attempt failed was bound by
# sleeping workers, not by the server.
DEFAULT_WORKERS_PER_SLOT = 4
# CometAPI's recipe allows 5 attempts with waits of 2^n s + U(0, 1) s. Full jitter waits half as
# long on average, so one more retry fits in about the same total wait.
DEFAULT_MAX_RETRIES = 5
# CometAPI's own cap on a single wait.
DEFAULT_MAX_WAIT = 30.0
# The first full-jitter window; it doubles with each retry up to max_wait. openai-python's
# first retry waits 0.5 s; CometAPI's recipe waits 1-2 s. Half a second keeps a run whose
# every first attempt fails near openai-python's pace, and a storm is kept off by the retry
# quota and the adaptive throttle, not by long first waits.
DEFAULT_BACKOFF_BASE = 0.5
# No official timeout exists; slow reasoning models can think for minutes before the first
# byte, so reads get openai-python's 600 s, while a connect that takes 10 s is already broken.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 600.0
# Caps a whole call, every attempt and wait included, so a retrying call ends.
DEFAULT_TOTAL_TIMEOUT = 900.0

# Caps on an answer, decoded. A chat answer is kilobytes; embeddings of a large batch run to
# tens of megabytes; a body past this is a broken or hostile server, and a compressed bomb
# stops here instead of filling memory.
DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024
# One streamed event: a chunk is a few hundred bytes; a gateway that sends a whole answer as
# one event still fits.
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class TimeoutLike(Protocol):
    """Anything with ``connect`` and ``read`` seconds, such as httpx's ``Timeout``."""

    @property
    def connect(self) -> float | None: ...

    @property
    def read(self) -> float | None: ...


TimeoutArg = Union[float, int, "Timeout", "tuple[float | None, float | None]", TimeoutLike, None]


@dataclass(frozen=True)
class Timeout:
    """Per-attempt timeouts in seconds, as requests takes them (connect, read); None for no
    timeout (the call's ``total_timeout`` still bounds every attempt)."""

    connect: float | None = DEFAULT_CONNECT_TIMEOUT
    read: float | None = DEFAULT_READ_TIMEOUT

    @classmethod
    def coerce(cls, value: TimeoutArg, argument: str = "timeout") -> Timeout:
        """Accept a Timeout, a number (both phases), a (connect, read) pair, None (no
        timeout, as openai-python means it) or an object with ``connect`` and ``read``
        attributes (httpx's ``Timeout``, which openai-python users pass)."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None)
        if isinstance(value, tuple) and len(value) == 2:
            connect, read = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            connect = read = value
        elif hasattr(value, "connect") and hasattr(value, "read"):
            connect, read = getattr(value, "connect"), getattr(value, "read")  # noqa: B009
        else:
            raise InvalidArgumentError(
                argument, f"expected seconds, a (connect, read) pair or None, got {value!r}"
            )
        return cls(
            connect=None if connect is None else _positive(argument, connect),
            read=None if read is None else _positive(argument, read),
        )


@dataclass(frozen=True)
class RetryConfig:
    """How a call retries (a client's ``config.retry``). See ``_call/retry.py`` for what is retried.

    ``max_retries``: retries after the first attempt. ``max_wait``: the cap on any one wait,
    a server's ``Retry-After`` included (one asking for more ends the call; the jitter on top
    of one may pass it by a tenth of what was asked). ``backoff_base``:
    the first full-jitter window, doubling per retry up to ``max_wait``. ``total_timeout``:
    the whole call, attempts and waits, in seconds (None: no bound).
    """

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


class CallOptions:
    """A call's settings after per-call overrides are applied. Built once per call; read-only
    afterwards (a plain ``__slots__`` class: one is made for every call)."""

    __slots__ = (
        "extra_headers",
        "max_event_bytes",
        "max_response_bytes",
        "query",
        "retry",
        "timeout",
    )

    def __init__(
        self,
        timeout: Timeout,
        retry: RetryConfig,
        extra_headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.timeout: Timeout = timeout
        self.retry: RetryConfig = retry
        self.extra_headers: dict[str, str] = extra_headers or {}
        self.query: dict[str, str] = query or {}
        # Caps on what an answer may hold, decoded: a whole body, one streamed event.
        self.max_response_bytes: int = max_response_bytes
        self.max_event_bytes: int = max_event_bytes

    def with_retry(self, retry: RetryConfig) -> CallOptions:
        return CallOptions(
            self.timeout,
            retry,
            self.extra_headers,
            self.query,
            self.max_response_bytes,
            self.max_event_bytes,
        )


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
    _check_key(api_key)
    return api_key


# A key goes into a header: printable ASCII, no spaces. Anything else would be sent broken,
# refused by the server (with the key echoed in its error) or raise an encoding error holding
# the key; so it is refused here, before anything is sent, without quoting it.
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")


def _check_key(key: str) -> None:
    if _KEY_CHARS.fullmatch(key):
        return
    if _KEY_CHARS.fullmatch(key.strip()):
        raise InvalidArgumentError(
            "api_key",
            "starts or ends with whitespace or a newline (a key read from a file "
            "keeps its newline: pass key.strip())",
        )
    raise InvalidArgumentError(
        "api_key",
        "contains a space, a control character or a character that is not ASCII; "
        "an API key is printable ASCII",
    )


def resolve_base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get(BASE_URL_ENV_VAR) or DEFAULT_BASE_URL
    if not isinstance(url, str):
        raise InvalidArgumentError("base_url", "expected a string")
    try:
        parts = urllib.parse.urlsplit(url)
        has_userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        raise InvalidArgumentError("base_url", "is not a valid URL") from None
    if has_userinfo:
        # requests would send it as Basic auth in place of our Bearer key, and the password
        # would show in every repr, error and log line.
        raise InvalidArgumentError(
            "base_url", "contains a user name or password; pass the key as api_key"
        )
    return url.rstrip("/")


# RFC 9110 token characters for a header name; a value may not hold CR, LF or NUL (header
# injection) and must encode as Latin-1, as http.client sends it.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def check_headers(headers: object, argument: str = "extra_headers") -> dict[str, str]:
    """A copy of ``extra_headers``, checked; a bad one raises without quoting its value."""
    if not isinstance(headers, Mapping):
        raise InvalidArgumentError(argument, "expected a dict of str to str")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidArgumentError(argument, "expected a dict of str to str")
        if not _TOKEN.fullmatch(name):
            raise InvalidArgumentError(argument, f"{name!r} is not a valid header name")
        if _BAD_VALUE.search(value):
            raise InvalidArgumentError(argument, f"the value of {name!r} contains a CR, LF or NUL")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                argument, f"the value of {name!r} is not Latin-1 text"
            ) from None
        checked[name] = value
    return checked


def _positive(argument: str, value: object) -> float:
    # "not > 0" rather than "<= 0": NaN compares false either way, and passed.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidArgumentError(argument, f"expected a positive number, got {value!r}")
    return float(value)


# -- rate control ----------------------------------------------------------------------------
# The concurrency limit of a model starts here and doubles each round trip (slow start) up to
# max_concurrency: an unknown small cap then costs a few 429s, not max_concurrency of them.
# 8 is the default max_concurrency, so a default client starts at full speed; a client raised
# to 64 reaches it in three round trips, which at an LLM's seconds per answer matters.
DEFAULT_INITIAL_CONCURRENCY = 8

PerModel = Union[float, int, Mapping[str, Union[float, int]], None]


@dataclass(frozen=True)
class RateControl:
    """How a client finds and follows the server's limits. Nothing here needs setting.

    ``adaptive`` (on): find each model's limits from 429s — the rate its server accepts, and a
    concurrency cap when 429s behave like one — and probe for more when nothing refuses.
    ``initial_concurrency`` (8): where each model's concurrency limit starts before doubling.
    ``rpm``/``tpm``: limits you know, paced exactly (tokens are estimated before a call and
    corrected from ``usage`` after); a number applies to each model, a dict names models
    (``{"gpt-4o": 500, "*": 3000}``: ``"*"`` for the others).
    ``use_headers`` (on): pace to the limits the server's rate-limit headers tell
    (``x-ratelimit-*``, ``anthropic-ratelimit-*``, ``RateLimit``), and hold while they say the
    budget is spent.
    ``throttle_retries`` (on): retries pay from a quota that a retry that heals refunds, and
    when the server fails most requests sends are held back in proportion (an outage is not
    met with a storm). Held-back work is deferred within its time budget, never failed.
    """

    adaptive: bool = True
    initial_concurrency: int = DEFAULT_INITIAL_CONCURRENCY
    rpm: PerModel = None
    tpm: PerModel = None
    use_headers: bool = True
    throttle_retries: bool = True

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                for model, limit in value.items():
                    if not isinstance(model, str):
                        raise InvalidArgumentError(name, f"model names must be str, got {model!r}")
                    _positive(f"{name}[{model!r}]", limit)
            elif value is not None:
                _positive(name, value)
        value = self.initial_concurrency
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(
                "initial_concurrency", f"expected an int >= 1, got {value!r}"
            )

    def rpm_for(self, model: str | None) -> float | None:
        return _for_model(self.rpm, model)

    def tpm_for(self, model: str | None) -> float | None:
        return _for_model(self.tpm, model)

    @classmethod
    def off(cls) -> RateControl:
        """A fixed limit and nothing else: no adaptation, no headers, no retry throttling."""
        return cls(adaptive=False, use_headers=False, throttle_retries=False)


def _for_model(value: PerModel, model: str | None) -> float | None:
    if isinstance(value, Mapping):
        found = value.get(model) if model is not None else None
        if found is None:
            found = value.get("*")
        return float(found) if found is not None else None
    return float(value) if value is not None else None
