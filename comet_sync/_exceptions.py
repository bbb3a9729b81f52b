"""The exceptions comet_sync raises.

The names and the tree follow openai-python, so ``except openai.RateLimitError``-style code ports
by changing the import only::

    CometError
     ├── InvalidArgumentError (also ValueError)   wrong arguments, raised before any request
     ├── ClientClosedError    (also RuntimeError) the client was used after close()
     ├── LengthFinishReasonError                  parse(): the reply was cut at its token limit
     ├── ContentFilterFinishReasonError           parse(): the content filter stopped the reply
     └── APIError
          ├── APIStatusError                      the server answered with a non-2xx status
          │    ├── BadRequestError                400
          │    ├── AuthenticationError            401
          │    ├── PermissionDeniedError          403
          │    ├── NotFoundError                  404
          │    ├── RequestTooLargeError           413
          │    ├── UnprocessableEntityError       422
          │    ├── RateLimitError                 429 (``.retry_after``)
          │    └── InternalServerError            >= 500
          ├── APIConnectionError                  no response: refused, reset, DNS, TLS
          │    ├── TLSError                       a certificate or protocol a retry meets again
          │    └── APITimeoutError
          │         └── LimiterTimeoutError       our own limiter held the call past its budget
          └── APIResponseValidationError          a 2xx whose body is not the JSON we expect

Every message carries the status and request id when known, never the API key: the key is
scrubbed (in every encoding a server might echo it in) out of anything the server sent back.
An exception keeps a :class:`ResponseSnapshot` of the answer (status, headers, a bounded
snippet of the body) and a :class:`RequestSnapshot` of the request (its method and URL, no
headers, no body): it pickles (Celery and multiprocessing send exceptions between processes)
without the ``Authorization`` header, without the user's prompt and without a 50 MB body.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from requests.structures import CaseInsensitiveDict

if TYPE_CHECKING:
    from ._types import ChatCompletion

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "CometError",
    "InternalServerError",
    "InvalidArgumentError",
    "LimiterTimeoutError",
    "LimiterUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestSnapshot",
    "RequestTooLargeError",
    "ResponseSnapshot",
    "TLSError",
    "UnprocessableEntityError",
]

# How much of a body an exception message quotes: enough to recognise an HTML error page or a
# truncated JSON document, short enough to keep a log line readable.
BODY_SNIPPET_CHARS = 200


# What an exception keeps of an error body: enough for any real error document, bounded so a
# gateway's 50 MB error page is not held by every exception that quotes it.
ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ResponseSnapshot:
    """What an exception keeps of the answer it reports: no request, no socket, a bounded body.

    ``status_code``, ``reason``, ``headers`` (the answer's, case-insensitive), ``url`` and
    ``text`` (the body, at most 64 KiB of it, key scrubbed); ``json()`` decodes ``text``.
    """

    status_code: int
    reason: str
    headers: Mapping[str, str] = field(repr=False)
    url: str
    text: str = field(repr=False)

    @classmethod
    def of(
        cls,
        *,
        status_code: int,
        reason: str,
        headers: Mapping[str, str],
        url: str,
        text: str,
        secret: str | None,
    ) -> ResponseSnapshot:
        """A snapshot of an answer whose ``reason`` and ``headers`` are already scrubbed (the
        transport scrubs them once, as the answer arrives); ``text`` is scrubbed here."""
        return cls(
            status_code=status_code,
            reason=reason,
            headers=headers,
            url=scrub(url, secret),
            # Scrubbed, then cut: a key straddling the cut is not kept by half.
            text=_scrub_decoded(scrub(text, secret)[:ERROR_BODY_LIMIT], secret),
        )

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass(frozen=True)
class RequestSnapshot:
    """What an exception keeps of the request it reports, in place of openai-python's
    ``httpx.Request``: ``method`` and ``url`` (query string included, the key scrubbed out).

    Never the headers (``Authorization`` holds the key) nor the body (the user's prompt, and
    possibly megabytes of it): an exception is logged, pickled and sent between processes.
    An exception built outside a call (by user code, in a test) has an empty one.
    """

    method: str = ""
    url: str = ""

    @classmethod
    def of(cls, method: str, url: str, secret: str | None) -> RequestSnapshot:
        return cls(method=method, url=scrub(url, secret))


# The request of an exception built outside a call: shared, it is immutable.
NO_REQUEST = RequestSnapshot()


class CometError(Exception):
    """Base class of every exception raised by comet_sync."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls cls(*args), which our keyword-only constructors
        # refuse: rebuild without __init__ and restore the attributes instead.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[CometError], args: tuple[Any, ...]) -> CometError:
    exc = cls.__new__(cls)
    exc.args = args
    return exc


class InvalidArgumentError(CometError, ValueError):
    """An argument is wrong; raised before any request leaves the process.

    ``.argument`` names the offending argument.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class ClientClosedError(CometError, RuntimeError):
    """The client was used after ``close()``."""


class APIError(CometError):
    """A request was sent and did not produce a usable answer."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        body: Any = None,
        request: RequestSnapshot = NO_REQUEST,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        # openai-python's ``body``: the error object (``{"message", "type", "param",
        # "code"}``, what ``"error"`` holds in the document), the document when it has no
        # ``"error"``, the text when it is not JSON; None when no answer came.
        self.body = body
        # The request the call sent; the call fills it in when the error leaves it.
        self.request = request
        # openai-python's fields from the error object (``error.code/type/param``); None when
        # the server sent none, as for every error that is not an answer.
        self.code: str | None = None
        self.type: str | None = None
        self.param: str | None = None
        # Filled in by the retry loop when it stops retrying for a reason of its own (attempts,
        # time budget, Retry-After too long); None when the error was simply not retryable.
        self.giveup_reason: str | None = None
        self.attempts: int = 1

    def __str__(self) -> str:
        if self.giveup_reason:
            return f"{self.message} [gave up: {self.giveup_reason}]"
        return self.message


class APIStatusError(APIError):
    """The server answered with a non-success status."""

    def __init__(
        self,
        message: str,
        *,
        response: ResponseSnapshot,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
        code: str | None = None,
        retry_after: float | None = None,
        type: str | None = None,  # (openai-python's name)
        param: str | None = None,
        document: Any = None,
    ) -> None:
        super().__init__(message, request_id=request_id, body=body)
        self.response = response
        self.status_code = status_code
        # The whole error body, decoded and scrubbed (``{"error": {...}}``); ``body`` is the
        # error object in it. (Not ``response.json()``: the snapshot's text is scrubbed as
        # text, and decoding it would turn a \u-escaped echo of the key back into the key.)
        self.document: Any = body if document is None else document
        # CometAPI's error.code ("invalid_request", "model_not_found", ...); often empty.
        self.code = code
        self.type = type
        self.param = param
        # Seconds the server asked us to wait (Retry-After / retry-after-ms), if it asked.
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class RequestTooLargeError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    """429. ``.retry_after`` holds the wait the server asked for, in seconds, if it asked."""


class InternalServerError(APIStatusError):
    pass


class APIConnectionError(APIError):
    """No response arrived: connection refused or reset, DNS, TLS, proxy."""


class TLSError(APIConnectionError):
    """TLS failed in a way every retry would meet again: a certificate not trusted (self-signed,
    expired, another host's), or TLS spoken to a port that does not speak it (``https://`` to a
    plain HTTP port). Not retried."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect or read)."""


class LimiterTimeoutError(APITimeoutError):
    """Our own limiter held the call back past its time budget, or (the adaptive throttle,
    the retry quota) past ``max_wait``, the cap on every wait, in what looks like an outage:
    nothing was sent. ``held_by`` says what held it (a hold on the server's word, pacing, the
    throttle, the retry quota, a slot). Never retried: its budget or its patience is spent."""

    def __init__(
        self,
        message: str,
        *,
        held_by: str,
        retry_after: float | None = None,
        outage: bool = False,
    ) -> None:
        super().__init__(message)
        self.held_by = held_by
        # Seconds until what held it would have let it out, when known (a hold, a pace): a
        # web view passes it on as Retry-After.
        self.retry_after = retry_after
        # Held by the throttle or the retry quota past max_wait: the model looks down, which
        # a fallback model may not be.
        self.outage = outage


class LimiterUnavailableError(CometError):
    """``failure="closed"`` and Redis did not answer: the call was not sent. (Raised by
    ``comet_sync.contrib.redis.RedisLimiter``, imported from there; defined here, with the
    other errors, so the retry policy can speak of it.)"""


class APIResponseValidationError(APIError):
    """A success status whose body is not the JSON we expect (HTML page, truncated JSON)."""

    def __init__(
        self,
        message: str,
        *,
        response: ResponseSnapshot,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, request_id=request_id, body=body)
        self.response = response
        self.status_code = status_code


def _scrub_decoded(text: str, secret: str | None) -> str:
    """``text`` (scrubbed as text) as JSON whose decoded strings hold no key either: an
    escape (``\\u0073k-...``) is not the key as text, but ``json()`` would decode it into
    the key. Only then is the document written out again, scrubbed; otherwise it is kept
    as it came."""
    if not json_may_hold(text, secret):
        return text
    try:
        decoded = json.loads(text)
    except ValueError:
        return text  # not JSON (or cut short): json() cannot decode it either
    scrubbed = scrub_json(decoded, secret)
    if scrubbed == decoded:
        return text
    return json.dumps(scrubbed, ensure_ascii=False)


def snippet(text: str, secret: str | None = None) -> str:
    """The first characters of a body, single-line, with the key scrubbed out."""
    text = scrub(text, secret)
    flat = " ".join(text.split())
    if len(flat) > BODY_SNIPPET_CHARS:
        return flat[:BODY_SNIPPET_CHARS] + "…"
    return flat


# Shorter "keys" (a test's "k") would scrub innocent text; real CometAPI keys are far longer.
MIN_SCRUB_LENGTH = 8


def scrub(text: str, secret: str | None) -> str:
    # Some gateways echo the bad token back ("invalid token sk-…"), some URL- or JSON-escaped;
    # none of it may reach a log.
    if not secret or len(secret) < MIN_SCRUB_LENGTH:
        return text
    for form in _forms(secret):
        if form in text:
            text = text.replace(form, "***")
    return text


def holds_secret(text: str, secret: str | None) -> bool:
    """Whether ``text`` holds the key in any form :func:`scrub` removes."""
    return scrub(text, secret) != text


class KeyFamily:
    """The API keys of a client and of its views with another ``api_key``: a server may echo
    any of them into any answer (an attack run saw a tenant's error carry the parent's key),
    so each of them scrubs all. Only grows; ``keys`` is replaced whole under the lock, so a
    reader takes it without one."""

    def __init__(self, key: str) -> None:
        self._lock = threading.Lock()  # guards replacing ``keys``
        self.keys: tuple[str, ...] = (key,)

    def add(self, key: str) -> None:
        with self._lock:
            if key not in self.keys:
                self.keys = (*self.keys, key)


class KeyRing(str):
    """A client's API key (the string itself, for its ``Authorization`` header) that scrubs,
    wherever a secret is scrubbed, every key of its :class:`KeyFamily` too."""

    family: KeyFamily

    def __new__(cls, key: str, family: KeyFamily) -> KeyRing:
        ring = super().__new__(cls, key)
        ring.family = family
        return ring


def _forms(secret: str) -> tuple[str, ...]:
    """Every form :func:`scrub` removes: the key's, and for a :class:`KeyRing` its family's."""
    family = getattr(secret, "family", None)
    if family is None:
        return _key_forms(secret)
    forms = {
        form for key in family.keys if len(key) >= MIN_SCRUB_LENGTH for form in _key_forms(key)
    }
    forms.update(_key_forms(str(secret)))
    return tuple(sorted(forms, key=len, reverse=True))


@functools.lru_cache(maxsize=8)
def _key_forms(secret: str) -> tuple[str, ...]:
    """The key as a server might echo it: raw, percent-encoded (either case of hex), as a
    query value (+ for space), JSON-escaped, and as UTF-16 or UTF-32 bytes read as UTF-8 (a
    body in those encodings is quoted so, its NULs and all)."""
    quoted = urllib.parse.quote(secret, safe="")
    forms = {
        secret,
        quoted,
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(secret),
        json.dumps(secret)[1:-1],
    }
    for encoding in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        forms.add(secret.encode(encoding).decode("utf-8", "replace"))
    # Longest first, so a form that contains another is replaced whole.
    return tuple(sorted(forms, key=len, reverse=True))


def scrub_json(value: Any, secret: str | None) -> Any:
    """A copy of decoded JSON with the key scrubbed out of every string in it, object keys
    included."""
    if not secret or len(secret) < MIN_SCRUB_LENGTH:
        return value
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, dict):
        return {scrub(k, secret): scrub_json(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v, secret) for v in value]
    return value


def json_may_hold(raw: bytes | bytearray | str, secret: str | None) -> bool:
    """Whether decoding ``raw`` (JSON text) might yield a string that holds the key: one of its
    forms is in the text, or an escape could spell it (``\\u`` spells any character; ``\\/``,
    ``\\\\`` and ``\\"`` only those). False lets a caller skip walking the decoded document,
    which for an embedding's thousands of numbers is most of the cost."""
    if not secret or len(secret) < MIN_SCRUB_LENGTH:
        return False
    data = raw.encode() if isinstance(raw, str) else raw
    if any(form in data for form in _byte_forms(secret)):
        return True
    if b"\\" not in data:
        return False
    return b"\\u" in data or any(ch in secret for ch in '/\\"')


def _byte_forms(secret: str) -> tuple[bytes, ...]:
    if getattr(secret, "family", None) is None:
        return _key_byte_forms(secret)
    return tuple(form.encode() for form in _forms(secret))  # a family grows: not cached


@functools.lru_cache(maxsize=8)
def _key_byte_forms(secret: str) -> tuple[bytes, ...]:
    return tuple(form.encode() for form in _key_forms(secret))


def scrub_headers(headers: Mapping[str, str], secret: str | None) -> Mapping[str, str]:
    """``headers`` as they are when no value holds the key (the common case, no copy), else a
    case-insensitive copy with the key scrubbed out of every value (and name)."""
    if not secret or len(secret) < MIN_SCRUB_LENGTH:
        return headers
    forms = _forms(secret)
    if not any(form in name or form in value for name, value in headers.items() for form in forms):
        return headers
    return CaseInsensitiveDict({scrub(k, secret): scrub(v, secret) for k, v in headers.items()})


class LengthFinishReasonError(CometError):
    """``parse()`` got a reply the model stopped at its token limit (``finish_reason="length"``):
    its content is cut short, so there is nothing whole to parse. ``.completion`` is the reply.
    openai-python's name and attribute."""

    def __init__(self, *, completion: ChatCompletion) -> None:
        message = "Could not parse response content as the length limit was reached"
        if completion.usage:
            message += f" - {completion.usage}"
        super().__init__(message)
        self.completion = completion


class ContentFilterFinishReasonError(CometError):
    """``parse()`` got a reply the content filter stopped (``finish_reason="content_filter"``).
    ``.completion`` is the reply (None when there was none). openai-python's name and
    attribute."""

    def __init__(self, *, completion: ChatCompletion | None = None) -> None:
        super().__init__(
            "Could not parse response content as the request was rejected by the content filter"
        )
        self.completion = completion


__all__ += ["ContentFilterFinishReasonError", "LengthFinishReasonError"]
