"""The exceptions comet_sync raises.

The names and the tree follow openai-python, so ``except openai.RateLimitError``-style code ports
by changing the import only::

    CometError
     ├── InvalidArgumentError (also ValueError)   wrong arguments, raised before any request
     ├── ClientClosedError    (also RuntimeError) the client was used after close()
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
          │    └── APITimeoutError
          │         └── LimiterTimeoutError       our own limiter held the call past its budget
          └── APIResponseValidationError          a 2xx whose body is not the JSON we expect

Every message carries the status and request id when known, never the API key: messages are
built by :func:`status_error`, which scrubs the key out of anything the server echoed back.
"""

from __future__ import annotations

from typing import Any

import requests

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
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "UnprocessableEntityError",
]

# How much of a body an exception message quotes: enough to recognise an HTML error page or a
# truncated JSON document, short enough to keep a log line readable.
BODY_SNIPPET_CHARS = 200


class CometError(Exception):
    """Base class of every exception raised by comet_sync."""


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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.body = body
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
        response: requests.Response,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, body=body)
        self.response = response
        self.status_code = status_code
        # CometAPI's error.code ("invalid_request", "model_not_found", ...); often empty.
        self.code = code
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


class APITimeoutError(APIConnectionError):
    """The request timed out (connect or read)."""


class LimiterTimeoutError(APITimeoutError):
    """The call's time budget ran out while our own limiter held it back: nothing was sent.
    ``held_by`` says what held it (a hold on the server's word, pacing, the throttle, a slot).
    Never retried: its budget is spent."""

    def __init__(self, message: str, *, held_by: str) -> None:
        super().__init__(message)
        self.held_by = held_by


class APIResponseValidationError(APIError):
    """A success status whose body is not the JSON we expect (HTML page, truncated JSON)."""

    def __init__(
        self,
        message: str,
        *,
        response: requests.Response,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, request_id=request_id, body=body)
        self.response = response
        self.status_code = status_code


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


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
    # Some gateways echo the bad token back ("invalid token sk-…"); it must not reach a log.
    if secret and len(secret) >= MIN_SCRUB_LENGTH and secret in text:
        return text.replace(secret, "***")
    return text


def scrub_json(value: Any, secret: str | None) -> Any:
    """A copy of decoded JSON with the key scrubbed out of every string in it."""
    if not secret or len(secret) < MIN_SCRUB_LENGTH:
        return value
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, dict):
        return {k: scrub_json(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v, secret) for v in value]
    return value
