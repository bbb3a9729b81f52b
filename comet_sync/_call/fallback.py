"""Model fallbacks: when a call may move on to the next model, and why. Pure functions (the
door, ``door.py``, runs a call over its chain).

A gateway to hundreds of models lets one job name several (``fallbacks=["m2", "m3"]``). A call
moves to the next model only when the model itself is the problem and its retries are spent:

* the model does not exist or has no channel right now (404 or 503 with ``model_not_found``,
  or CometAPI's "no available channel" wording);
* its channel stayed saturated through every retry (429 that is not about the account's
  quota or balance: another model has its own limits);
* it kept failing on the server's side (5xx) or timing out through every retry.

Never for errors the request itself causes (400, 401, 403, 413, 422, a 500 with code
``invalid_request``): the next model would refuse it too, and paying twice for that is waste.
Nor for a spent quota, nor for our own limiter's budget running out, nor after a stop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Union

from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InvalidArgumentError,
    LimiterTimeoutError,
)
from .retry import is_quota_exhausted

__all__ = [
    "Fallbacks",
    "chain_of",
    "check_fallbacks",
    "fallback_reason",
    "fallbacks_for",
]

Fallbacks = Union[Sequence[str], Mapping[str, Sequence[str]], None]

_NO_CHANNEL = re.compile(
    r"no available channel|model[_ ]not[_ ]found|does not exist|"
    r"no channel",
    re.IGNORECASE,
)


def fallback_reason(exc: BaseException) -> str | None:
    """Why a call that ended with ``exc`` (its retries spent) may move to the next model;
    None when it may not."""
    if isinstance(exc, LimiterTimeoutError):
        # Our own budget ran out: another model would not have more of it. An outage of this
        # model, though, another may not share.
        return "in an outage (held by our throttle past max_wait)" if exc.outage else None
    if isinstance(exc, APIStatusError):
        status = exc.status_code
        if exc.code == "model_not_found" or (
            status in (404, 503) and _NO_CHANNEL.search(exc.message or "")
        ):
            return f"model unavailable ({status})"
        if status == 429:
            return None if is_quota_exhausted(exc) else "saturated (429 through every retry)"
        if status >= 500 and exc.code != "invalid_request":
            return f"server error ({status} through every retry)"
        return None
    if isinstance(exc, APITimeoutError):
        return "timed out through every retry"
    if isinstance(exc, APIConnectionError):
        return "no answer through every retry"
    return None


def check_fallbacks(value: object, argument: str = "fallbacks") -> list[str] | None:
    """A call's fallbacks as a list of model names (None for none); raises naming the
    argument when it is not a list of non-empty strings."""
    if value is None:
        return None
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or not all(isinstance(m, str) and m.strip() for m in value)
    ):
        raise InvalidArgumentError(argument, "expected a list of model names")
    return list(value)


def fallbacks_for(default: Fallbacks, model: str, *, named_only: bool = False) -> list[str] | None:
    """The client's default fallbacks for ``model``: a list for every model, or a dict by
    model (``"*"`` for the others). ``named_only``: only a dict entry naming ``model``."""
    if default is None:
        return None
    if isinstance(default, Mapping):
        found = default.get(model) if named_only else default.get(model, default.get("*"))
        return list(found) if found is not None else None
    return None if named_only else list(default)


def chain_of(
    model: str, fallbacks: object, default: Fallbacks, *, named_only: bool = False
) -> list[str]:
    """The models a call tries, in order: its own, then its fallbacks (given, else the
    client's default for it), each once. ``named_only`` (embeddings): of the client's
    default, only an entry naming the model counts."""
    more = check_fallbacks(fallbacks)
    if more is None:
        more = fallbacks_for(default, model, named_only=named_only)
    return [model, *[m for m in dict.fromkeys(more or ()) if m != model]]
