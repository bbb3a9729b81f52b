"""What the server said about its limits: rate-limit and ``Retry-After`` headers, parsed.

CometAPI documents no rate-limit headers of its own, but the upstreams behind the gateway, and
the other OpenAI-compatible servers this client can be pointed at, pass one of three families
through: OpenAI/Azure ``x-ratelimit-*``, Anthropic ``anthropic-ratelimit-*`` and the IETF
draft's ``RateLimit`` / ``RateLimit-Policy`` (or its older ``RateLimit-Limit`` / ``-Remaining``
/ ``-Reset``), besides ``Retry-After`` and OpenAI's finer ``retry-after-ms``. A told limit lets
the client pace itself instead of learning the limit one 429 at a time.

Pure: no I/O, no clock (the wall time is passed in, so a date can be measured against it) and
no sleeping. Headers come from servers we do not control, so nothing here trusts them: a
malformed value is ignored, never raised, and a wait or reset longer than ``MAX_SANE_WAIT`` is
treated as absent, so no header, however absurd, can pause a client for ever.

Header names are matched case-insensitively for any mapping: requests' ``CaseInsensitiveDict``
and a plain ``dict`` with names in any case both work.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

__all__ = [
    "EMPTY",
    "MAX_SANE_WAIT",
    "Quota",
    "ServerWord",
    "parse_duration",
    "parse_retry_after",
    "parse_server_word",
]

logger = logging.getLogger("comet_sync")

_T = TypeVar("_T")

# A told wait or reset longer than a day is absurd: treated as absent.
MAX_SANE_WAIT: float = 86_400.0

# OpenAI and Anthropic state their limits per minute without saying so in the headers. Other
# servers use the same names for other windows: this is a hypothesis to test
# (``_rate/evidence.py``), not a fact.
_PER_MINUTE = 60.0


@dataclass(frozen=True)
class Quota:
    """One told limit (requests or tokens)."""

    limit: float | None  # units per window
    remaining: float | None  # units left now
    reset: float | None  # seconds until the limit is back to full (>= 0)
    window: float | None  # seconds the limit counts over, as the header family names it
    # How coarse ``reset`` is: 1.0 when written in whole seconds (a bare integer, an RFC 3339
    # time or Unix time without a fraction: it may be up to a second more than the truth).
    reset_resolution: float = field(default=0.0, compare=False)
    # True when the server stated ``window`` (IETF's w=); False when it is the family's
    # convention (OpenAI's and Anthropic's minute), which many servers do not follow.
    window_stated: bool = field(default=False, compare=False)

    @property
    def rate(self) -> float | None:
        """Units per second, when both the limit and its window are known; else None."""
        if self.limit is None or self.window is None or self.limit <= 0 or self.window <= 0:
            return None
        return self.limit / self.window


@dataclass(frozen=True)
class ServerWord:
    """Everything one response said about limits; ``source`` names the header family used."""

    retry_after: float | None  # seconds to wait, the most precise value given, or None
    requests: Quota | None
    tokens: Quota | None  # for Anthropic: the tokens quota (or, if absent, input-tokens)
    source: str | None  # "openai", "anthropic", "ietf" or None when no rate header at all

    @property
    def empty(self) -> bool:
        """True when nothing usable was told."""
        return self.retry_after is None and self.requests is None and self.tokens is None


EMPTY = ServerWord(None, None, None, None)


# A misbehaving upstream sends the same bad header on every response: say so once per name,
# and cap the set so a server inventing names cannot grow it without end.
_LOGGED_CAP = 64
_LOGGED: set[str] = set()
_LOGGED_LOCK = threading.Lock()


def _malformed(name: str, value: object, exc_info: bool = False) -> None:
    # Checked first so a process that never logs at DEBUG never pays for the lock or the set,
    # and turning DEBUG on later still shows the names seen since.
    if not logger.isEnabledFor(logging.DEBUG):
        return
    with _LOGGED_LOCK:
        if name in _LOGGED or len(_LOGGED) >= _LOGGED_CAP:
            return
        _LOGGED.add(name)
    logger.debug("ignoring malformed %s header: %.40r", name, value, exc_info=exc_info)


# Plain decimals only: float() alone would also take "inf", "nan", "1e9", "1_000" and non-ASCII
# digits, none of which a server means as a count or a number of seconds.
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_UNSIGNED = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")

_UNIT_SECONDS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # MICRO SIGN, which Go prints
    "\u03bcs": 1e-6,  # GREEK SMALL LETTER MU, which Go also accepts
    "ns": 1e-9,
}
# Longer units first, so "ms" is not read as "m" followed by a stray "s".
_UNITS = "ms|us|\u00b5s|\u03bcs|ns|h|m|s"
_DURATION_PART = re.compile(rf"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)({_UNITS})")
_DURATION = re.compile(rf"(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:{_UNITS}))+")

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _sane(seconds: float) -> bool:
    return math.isfinite(seconds) and 0.0 <= seconds <= MAX_SANE_WAIT


def _number(text: str) -> float | None:
    """A finite plain decimal, sign allowed, or None."""
    text = text.strip()
    if _NUMBER.fullmatch(text) is None:
        return None
    value = float(text)  # a few hundred digits still overflow to inf
    return value if math.isfinite(value) else None


def _count(text: str) -> float | None:
    value = _number(text)
    return value if value is not None and value >= 0 else None


def _seconds(text: str) -> float | None:
    value = _number(text)
    return value if value is not None and _sane(value) else None


def _limit(value: float | None) -> float | None:
    # Azure answers -1 or 0 when it does not know the limit; a limit of nothing is no limit we
    # can pace to either, and taking it at its word would stop the client for good.
    return value if value is not None and value > 0 else None


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "23h18m29.144s", "12ms", "500us"), as OpenAI
    sends in ``x-ratelimit-reset-*``, or in a bare number of seconds ("2", "0.5").

    None for anything else: signs, exponents, "inf"/"nan", trailing numbers without a unit,
    and durations longer than ``MAX_SANE_WAIT``.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if _UNSIGNED.fullmatch(text) is not None:
        seconds = float(text)
    elif _DURATION.fullmatch(text) is not None:
        seconds = sum(
            float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(text)
        )
    else:
        return None
    return seconds if _sane(seconds) else None


def _seconds_until_http_date(text: str, now_wall: float) -> float | None:
    try:
        when = parsedate_to_datetime(text.strip())
        if when.tzinfo is None:
            # "-0000" and zoneless dates parse naive; HTTP dates are always GMT, and a naive
            # .timestamp() would be read in the machine's local zone instead.
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - now_wall)
    # The stdlib parser has raised TypeError, ValueError, IndexError and OverflowError on bad
    # input across Python versions; none of them should fail a response.
    except Exception:
        return None


def _seconds_until_rfc3339(text: str, now_wall: float) -> float | None:
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    *date_and_time, fraction, sign, off_hours, off_minutes = match.groups()
    try:
        offset = timedelta(0)
        if sign is not None:
            offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
            if sign == "-":
                offset = -offset
        year, month, day, hour, minute, second = (int(part) for part in date_and_time)
        when = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
        # The fraction is added as a float: datetime keeps only microseconds, and fromisoformat
        # takes neither "Z" nor arbitrary fractions before Python 3.11.
        seconds = when.timestamp() + (float(fraction) if fraction else 0.0) - now_wall
    except (ValueError, OverflowError):  # month 13, second 60, offset of a day or more
        return None
    seconds = max(0.0, seconds)
    return seconds if _sane(seconds) else None


# Every name any family uses starts with one of these, so one pass over the names finds them all
# whatever the mapping's case handling, and most responses (no rate headers) end right there.
_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit", "retry-after")


def _relevant(headers: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in headers:
        low = name.lower()
        if low.startswith(_PREFIXES):
            value = headers[name]
            if isinstance(value, str):
                found[low] = value
    return found


def _field(found: Mapping[str, str], name: str, parse: Callable[[str], _T | None]) -> _T | None:
    """The header ``name`` parsed, or None; a value that does not parse is logged once."""
    text = found.get(name)
    if text is None:
        return None
    value = parse(text)
    if value is None:
        _malformed(name, text)
    return value


def _quota(
    limit: float | None,
    remaining: float | None,
    reset: float | None,
    window: float | None,
    reset_text: str | None = None,
    stated: bool = False,
) -> Quota | None:
    if limit is None and remaining is None and reset is None:
        return None  # a window alone says nothing about this response
    if limit is not None and remaining is not None and remaining > limit:
        # The counter is out of step with the limit (a plan change, another window's count):
        # the limit still describes the policy, the count cannot be trusted to pace by.
        remaining = None
    resolution = _resolution(reset_text) if reset is not None and reset_text else 0.0
    return Quota(limit, remaining, reset, window, resolution, stated)


_WHOLE = re.compile(r"[0-9]+")


def _resolution(text: str) -> float:
    """1.0 for a reset written in whole seconds, 0.001 for anything finer."""
    text = text.strip()
    if _WHOLE.fullmatch(text) is not None:
        return 0.001 if float(text) >= EPOCH_MS else 1.0
    match = _RFC3339.fullmatch(text)
    if match is not None and not match.group(7):
        return 1.0
    return 0.001


def _retry_after(found: Mapping[str, str], now_wall: float) -> float | None:
    text = found.get("retry-after-ms")
    if text is not None:
        millis = _count(text)
        if millis is not None and _sane(millis / 1000.0):
            return millis / 1000.0
        _malformed("retry-after-ms", text)
    text = found.get("retry-after")
    if text is not None:
        seconds = _number(text)
        if seconds is None:
            seconds = _seconds_until_http_date(text, now_wall)
        if seconds is not None and _sane(seconds):
            return seconds
        _malformed("retry-after", text)
    return None


def parse_retry_after(headers: Mapping[str, str], now_wall: float) -> float | None:
    """Seconds the server asked us to wait, or None.

    ``retry-after-ms`` (milliseconds) wins when valid; else ``Retry-After`` as seconds or as an
    HTTP date, measured against ``now_wall`` (epoch seconds; a date in the past gives 0.0).
    Negative, non-finite, unparseable and longer-than-``MAX_SANE_WAIT`` values count as absent.
    """
    try:
        return _retry_after(_relevant(headers), now_wall)
    except Exception:  # a header parser must never fail a response that otherwise succeeded
        _malformed("(unreadable headers)", type(headers).__name__, exc_info=True)
        return None


_OPENAI_NAMES = frozenset(
    f"x-ratelimit-{field}-{kind}"
    for kind in ("requests", "tokens")
    for field in ("limit", "remaining", "reset")
)


# A bare reset this large is no duration but a moment: a Unix time in seconds (OpenRouter and
# many gateways send when the window ends), or past EPOCH_MS in milliseconds.
EPOCH_SECONDS = 1e9
EPOCH_MS = 1e12


def _reset(text: str, now_wall: float) -> float | None:
    """A reset as a duration (Go style, or bare seconds) or as a Unix time, in seconds."""
    stripped = text.strip()
    if _UNSIGNED.fullmatch(stripped) is not None:
        value = float(stripped)
        if value >= EPOCH_SECONDS:
            moment = value / 1000.0 if value >= EPOCH_MS else value
            seconds = max(0.0, moment - now_wall)
            return seconds if _sane(seconds) else None
    return parse_duration(stripped)


def _openai_quota(found: Mapping[str, str], kind: str, now_wall: float) -> Quota | None:
    return _quota(
        _limit(_field(found, f"x-ratelimit-limit-{kind}", _number)),
        _field(found, f"x-ratelimit-remaining-{kind}", _count),
        _field(found, f"x-ratelimit-reset-{kind}", lambda text: _reset(text, now_wall)),
        _PER_MINUTE,
        found.get(f"x-ratelimit-reset-{kind}"),
    )


def _openai(found: Mapping[str, str], now_wall: float) -> tuple[Quota | None, Quota | None]:
    return _openai_quota(found, "requests", now_wall), _openai_quota(found, "tokens", now_wall)


_ANTHROPIC_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
_ANTHROPIC_NAMES = frozenset(
    f"anthropic-ratelimit-{kind}-{field}"
    for kind in _ANTHROPIC_KINDS
    for field in ("limit", "remaining", "reset")
)


def _anthropic_quota(found: Mapping[str, str], kind: str, now_wall: float) -> Quota | None:
    prefix = f"anthropic-ratelimit-{kind}-"
    return _quota(
        _limit(_field(found, prefix + "limit", _number)),
        _field(found, prefix + "remaining", _count),
        _field(found, prefix + "reset", lambda text: _seconds_until_rfc3339(text, now_wall)),
        _PER_MINUTE,
        found.get(prefix + "reset"),
    )


def _anthropic(found: Mapping[str, str], now_wall: float) -> tuple[Quota | None, Quota | None]:
    tokens = _anthropic_quota(found, "tokens", now_wall)
    if tokens is None:
        # Newer models are limited on input and output tokens separately; input is what a
        # request spends before it runs, so it is the one to pace sending by.
        tokens = _anthropic_quota(found, "input-tokens", now_wall)
    return _anthropic_quota(found, "requests", now_wall), tokens


_IETF_NAMES = frozenset(
    {"ratelimit", "ratelimit-policy", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}
)

# A lenient subset of RFC 8941 lists: bare items (string, token, number, byte sequence) with
# ";key=value" parameters. Enough for every draft's shape; anything else fails the whole header.
_SF_BARE = r'"(?:[^"\\]|\\.)*"|:[A-Za-z0-9+/=]*:|[^\s;,"]+'
_SF_KEY = r"[A-Za-z*][A-Za-z0-9_.*-]*"
_SF_PARAM = re.compile(rf"\s*;\s*({_SF_KEY})(?:=({_SF_BARE}))?")
_SF_MEMBER = re.compile(
    rf"[ \t]*({_SF_BARE})((?:\s*;\s*{_SF_KEY}(?:=(?:{_SF_BARE}))?)*)[ \t]*(?:,|\Z)"
)
_SF_ESCAPE = re.compile(r"\\(.)")


class _Member:
    __slots__ = ("item", "params", "quoted")

    def __init__(self, item: str, quoted: bool, params: dict[str, str]) -> None:
        self.item = item
        self.quoted = quoted
        self.params = params


def _sf_unquote(text: str) -> str:
    if text.startswith('"'):
        return _SF_ESCAPE.sub(r"\1", text[1:-1])
    return text


def _sf_list(text: str) -> list[_Member] | None:
    members: list[_Member] = []
    pos, end = 0, len(text)
    while pos < end:
        match = _SF_MEMBER.match(text, pos)
        if match is None or match.end() == pos:
            return None
        bare, params = match.group(1), match.group(2)
        members.append(
            _Member(
                _sf_unquote(bare),
                bare.startswith('"'),
                {
                    key.lower(): "?1" if value is None else _sf_unquote(value)
                    for key, value in (p.groups() for p in _SF_PARAM.finditer(params))
                },
            )
        )
        pos = match.end()
    return members or None


def _sf_header(found: Mapping[str, str], name: str) -> list[_Member] | None:
    return _field(found, name, _sf_list)


def _param(member: _Member, key: str, parse: Callable[[str], float | None]) -> float | None:
    text = member.params.get(key)
    return None if text is None else parse(text)


def _window(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None  # a window of no time is none


def _ietf_new(found: Mapping[str, str]) -> Quota | None:
    """Draft 07 and later: ``RateLimit-Policy`` names quotas, ``RateLimit`` reports on them."""
    best: tuple[str | None, float | None, float | None] | None = None
    best_rate = math.inf
    for member in _sf_header(found, "ratelimit-policy") or ():
        unit = member.params.get("qu")
        if unit is not None and unit != "requests":
            continue  # a byte or concurrency quota says nothing about the request rate
        if not member.quoted and _number(member.item) is not None:
            # Drafts 05/06 wrote a policy as the quota itself: "100;w=60".
            name, limit = None, _limit(_number(member.item))
        else:
            name, limit = member.item, _limit(_param(member, "q", _number))
        window = _window(_param(member, "w", _number))
        # The tightest policy binds first; one without a rate ranks after any with one.
        rate = limit / window if limit is not None and window is not None else math.inf
        if best is None or rate < best_rate:
            best, best_rate = (name, limit, window), rate

    name, limit, window = best if best is not None else (None, None, None)
    remaining = reset = None
    reset_text = None
    reports = _sf_header(found, "ratelimit")
    if reports:
        report = next((m for m in reports if name is not None and m.item == name), reports[0])
        remaining = _param(report, "r", _count)
        reset = _param(report, "t", _seconds)
        reset_text = report.params.get("t")
    return _quota(limit, remaining, reset, window, reset_text, stated=window is not None)


def _ietf_old(found: Mapping[str, str]) -> Quota | None:
    """Drafts up to 06: ``RateLimit-Limit: 100, 100;w=60``, ``-Remaining: 50``, ``-Reset: 30``."""
    limit = window = None
    members = _sf_header(found, "ratelimit-limit")
    if members:
        limit = _limit(_number(members[0].item))
        # The first member is the limit in force; the policies after it carry its window.
        windows = [(_number(m.item), _window(_param(m, "w", _number))) for m in members]
        told = [(quota, w) for quota, w in windows if w is not None]
        window = next((w for quota, w in told if quota == limit), told[0][1] if told else None)
    return _quota(
        limit,
        _field(found, "ratelimit-remaining", _count),
        # Seconds by the drafts; "0.6s" by some servers: a duration reads both.
        _field(found, "ratelimit-reset", parse_duration),
        window,
        found.get("ratelimit-reset"),
        stated=window is not None,
    )


def _ietf(found: Mapping[str, str], now_wall: float) -> tuple[Quota | None, Quota | None]:
    newer = _ietf_new(found) if "ratelimit" in found or "ratelimit-policy" in found else None
    older = _ietf_old(found)
    if newer is None or older is None:
        return newer or older, None
    # Draft 06 sent a RateLimit-Policy next to the old trio: each fills what the other lacks.
    merged = _quota(
        _either(newer.limit, older.limit),
        _either(newer.remaining, older.remaining),
        _either(newer.reset, older.reset),
        _either(newer.window, older.window),
    )
    if merged is not None:
        coarse = newer.reset_resolution if newer.reset is not None else older.reset_resolution
        stated = merged.window is not None
        merged = Quota(merged.limit, merged.remaining, merged.reset, merged.window, coarse, stated)
    return merged, None


def _either(first: float | None, second: float | None) -> float | None:
    return first if first is not None else second


_FAMILIES: tuple[
    tuple[
        str,
        frozenset[str],
        Callable[[Mapping[str, str], float], tuple[Quota | None, Quota | None]],
    ],
    ...,
] = (
    ("openai", _OPENAI_NAMES, _openai),
    ("anthropic", _ANTHROPIC_NAMES, _anthropic),
    ("ietf", _IETF_NAMES, _ietf),
)


def _server_word(found: Mapping[str, str], now_wall: float) -> ServerWord:
    retry_after = _retry_after(found, now_wall)
    for source, names, read in _FAMILIES:
        # Only one family: upstreams that send two (a proxy adding its own) would mix limits
        # counted over different things.
        if not names.isdisjoint(found):
            requests, tokens = read(found, now_wall)
            return ServerWord(retry_after, requests, tokens, source)
    return EMPTY if retry_after is None else ServerWord(retry_after, None, None, None)


def parse_server_word(headers: Mapping[str, str], now_wall: float) -> ServerWord:
    """What one response's headers said about limits; ``EMPTY`` when they said nothing.

    Families are tried in order OpenAI/Azure, Anthropic, IETF draft, and only the first one
    present is read. ``now_wall`` is epoch seconds (``time.time()``), to measure dates against.
    Never raises: malformed values are ignored (and named once, at DEBUG).
    """
    try:
        found = _relevant(headers)
        if not found:
            return EMPTY
        return _server_word(found, now_wall)
    except Exception:  # a header parser must never fail a response that otherwise succeeded
        _malformed("(unreadable headers)", type(headers).__name__, exc_info=True)
        return EMPTY
