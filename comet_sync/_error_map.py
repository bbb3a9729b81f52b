"""Reading CometAPI's answers: JSON bodies, error bodies, request ids, Retry-After.

Parsing is defensive: gateways and proxies in front of CometAPI send HTML pages, redirects and
odd error shapes, and each of those must become one of our exceptions with the status, the
request id and a snippet of the body, never a bare ``JSONDecodeError``.

Text: a JSON answer must be UTF-8 (RFC 8259); one that is not raises
:class:`APIResponseValidationError` rather than being read with guessed or replaced
characters. Error bodies are only quoted, so invalid bytes there become U+FFFD.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ._exceptions import (
    ERROR_BODY_LIMIT,
    APIResponseValidationError,
    APIStatusError,
    scrub,
    scrub_json,
    snippet,
    status_error_class,
)
from ._headers import parse_retry_after
from ._transport import Exchange

__all__ = ["error_from_response", "json_body", "not_a_stream", "request_id_of"]

# Header first (the gateway family CometAPI runs on sends X-Oneapi-Request-Id; proxies send
# x-request-id), then CometAPI's habit of writing "(request id: XXXX)" into the message.
_REQUEST_ID_HEADERS = ("x-request-id", "x-oneapi-request-id", "request-id")
_REQUEST_ID_IN_TEXT = re.compile(r"request id:\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)


def request_id_of(headers: Mapping[str, str], message: str = "") -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    match = _REQUEST_ID_IN_TEXT.search(message)
    return match.group(1) if match else None


def json_body(
    exchange: Exchange,
    body: bytes | bytearray,
    *,
    route: str,
    required: tuple[str, ...],
    secret: str | None,
) -> dict[str, Any]:
    """The decoded JSON object of a 2xx answer, checked for the keys the route must have."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        data = None
        problem = f"the body is not valid UTF-8 (byte {exc.start})"
    except ValueError:
        data = None
        problem = f"expected JSON, got {exchange.headers.get('content-type') or 'no content type'}"
    else:
        if not isinstance(data, dict):
            problem = f"expected a JSON object, got {type(data).__name__}"
        else:
            missing = [key for key in required if key not in data]
            if not missing:
                return data
            problem = f"JSON lacks {', '.join(missing)}"
    text = _text(body[:ERROR_BODY_LIMIT])
    request_id = request_id_of(exchange.headers, text)
    status = exchange.status_code
    raise APIResponseValidationError(
        f"{status} from {route}: {problem}"
        f"{_rid_suffix(request_id)}; body: {snippet(text, secret)!r}"
        " (a wrong base_url or a proxy answers like this)",
        response=exchange.snapshot(text, secret),
        status_code=status,
        request_id=request_id,
        body=scrub_json(data, secret)
        if data is not None and len(body) <= ERROR_BODY_LIMIT
        else scrub(text, secret),
    )


def not_a_stream(
    exchange: Exchange, *, route: str, secret: str | None
) -> APIResponseValidationError:
    """The exception for a 2xx answer to a streamed call that is not an event stream."""
    text = _text(exchange.read_body(ERROR_BODY_LIMIT, truncate=True))
    request_id = request_id_of(exchange.headers, text)
    ctype = exchange.headers.get("content-type") or "no content type"
    return APIResponseValidationError(
        f"{exchange.status_code} from {route}: expected an event stream, got {ctype}"
        f"{_rid_suffix(request_id)}; body: {snippet(text, secret)!r}",
        response=exchange.snapshot(text, secret),
        status_code=exchange.status_code,
        request_id=request_id,
        body=scrub(text, secret),
    )


def error_from_response(exchange: Exchange, *, route: str, secret: str | None) -> APIStatusError:
    """The exception for a non-2xx answer. Reads at most ``ERROR_BODY_LIMIT`` of its body:
    the rest is left unread (the connection is then closed, not reused)."""
    status = exchange.status_code
    raw = exchange.read_body(ERROR_BODY_LIMIT, truncate=True)
    text = _text(raw)
    body: Any
    code: str | None = None
    error_type: str | None = None
    error_param: str | None = None
    try:
        body = json.loads(text)
    except ValueError:
        body = scrub(text, secret)
        server_message = snippet(text, secret) or exchange.response.reason or "no body"
    else:
        server_message, code = _error_fields(body, text, secret)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            kind, param = error.get("type"), error.get("param")
            error_type = str(kind) if kind else None
            error_param = str(param) if param else None
        body = scrub_json(body, secret)
    request_id = request_id_of(exchange.headers, server_message)
    message = f"{status} from {route}: {server_message}"
    if request_id and request_id not in server_message:
        message += _rid_suffix(request_id)
    if 300 <= status < 400:
        location = scrub(str(exchange.headers.get("location")), secret)
        message += f" (redirected to {location!r}: check base_url)"
    elif status in (401, 404):
        message += " (a wrong base_url answers like this too)"
    return status_error_class(status)(
        message,
        response=exchange.snapshot(text, secret),
        status_code=status,
        request_id=request_id,
        body=body,
        code=code,
        retry_after=parse_retry_after(exchange.headers, time.time()),
        type=error_type,
        param=error_param,
    )


def _error_fields(body: Any, text: str, secret: str | None) -> tuple[str, str | None]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code")
        return (
            scrub(str(message), secret) if message else snippet(text, secret),
            str(code) if code else None,
        )
    if isinstance(error, str):
        return scrub(error, secret), None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return scrub(body["message"], secret), None
    return snippet(text, secret), None


def _rid_suffix(request_id: str | None) -> str:
    return f" (request id: {request_id})" if request_id else ""


def _text(body: bytes | bytearray) -> str:
    return body.decode("utf-8", "replace")
