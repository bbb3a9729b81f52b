"""Model fallbacks: when a call may move on to the next model, and why. Pure functions.

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

import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar, Union

from .._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    InvalidArgumentError,
    LimiterTimeoutError,
)
from .retry import is_quota_exhausted

if TYPE_CHECKING:
    from .._client import CallPath
    from .._config import CallOptions
    from .._records import RequestRecord

__all__ = [
    "Fallbacks",
    "chain_of",
    "check_fallbacks",
    "each_model",
    "fallback_reason",
    "fallbacks_for",
    "json_over_chain",
]

logger = logging.getLogger("comet_sync")
T = TypeVar("T")

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


def fallbacks_for(default: Fallbacks, model: str) -> list[str] | None:
    """The client's default fallbacks for ``model``: a list for every model, or a dict by
    model (``"*"`` for the others)."""
    if default is None:
        return None
    if isinstance(default, Mapping):
        found = default.get(model, default.get("*"))
        return list(found) if found is not None else None
    return list(default)


def chain_of(model: str, fallbacks: object, default: Fallbacks) -> list[str]:
    """The models a call tries, in order: its own, then its fallbacks (given, else the
    client's default for it), each once."""
    more = check_fallbacks(fallbacks)
    if more is None:
        more = fallbacks_for(default, model)
    return [model, *[m for m in dict.fromkeys(more or ()) if m != model]]


def each_model(
    calls: CallPath,
    chain: list[str],
    payload: dict[str, Any],
    options: CallOptions,
    call: Callable[[dict[str, Any], CallOptions, tuple[str, str] | None], T],
) -> T:
    """``call`` on the first model of ``chain``, then on the next while the one before failed
    in a way a fallback may heal; each within what is left of the call's budget. ``call``
    gets the body, the options and (on a fallback) the model left and why."""
    clock = calls.clock.monotonic
    started = clock()
    fallback: tuple[str, str] | None = None
    for index, model in enumerate(chain):
        body, opts = payload, options
        if index:
            body = {**payload, "model": model}
            opts = _with_budget_left(options, clock() - started)
        try:
            return call(body, opts, fallback)
        except APIError as exc:
            reason = fallback_reason(exc) if index + 1 < len(chain) else None
            budget = opts.retry.total_timeout
            if reason is None or (budget is not None and budget <= clock() - started):
                raise
            logger.warning("model %s: %s; moving on to %s", model, reason, chain[index + 1])
            fallback = (model, reason)
    raise AssertionError("unreachable: a chain is never empty")


def json_over_chain(
    calls: CallPath,
    route: str,
    required: tuple[str, ...],
    chain: list[str],
    payload: dict[str, Any],
    options: CallOptions,
    sink: Callable[[RequestRecord], None] | None = None,
) -> dict[str, Any]:
    """A non-streamed POST over the model chain: the raw JSON of the first model that
    answers (see :func:`each_model`)."""
    return each_model(
        calls,
        chain,
        payload,
        options,
        lambda body, opts, fb: calls.json(
            "POST", route, body, options=opts, required=required, sink=sink, fallback=fb
        ),
    )


def _with_budget_left(options: CallOptions, spent: float) -> CallOptions:
    budget = options.retry.total_timeout
    if budget is None:
        return options
    return options.with_retry(options.retry.replace(total_timeout=max(budget - spent, 1e-3)))
