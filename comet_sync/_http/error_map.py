"""The error boundary: everything that goes wrong on the wire becomes one of our exceptions
here, and only here. A status and its error body, a 2xx whose body is not the JSON expected, a
stream that is not one or that breaks, ends early or sends an error event, a connection that
fails or is cut, a body too large or wrongly encoded.

Parsing is defensive: gateways and proxies in front of CometAPI send HTML pages, redirects and
odd error shapes, and each of those must become one of our exceptions with the status, the
request id and a snippet of the body, never a bare ``JSONDecodeError``, ``zlib.error`` or
``requests`` exception.

Text: a JSON answer must be UTF-8 (RFC 8259); one that is not raises
:class:`APIResponseValidationError` rather than being read with guessed or replaced
characters. Error bodies are only quoted, so invalid bytes there become U+FFFD.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests
import urllib3

from .._exceptions import (
    ERROR_BODY_LIMIT,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    CometError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ResponseSnapshot,
    TLSError,
    UnprocessableEntityError,
    holds_secret,
    scrub,
    snippet,
)
from .headers import parse_retry_after

if TYPE_CHECKING:
    from .transport import Exchange

__all__ = [
    "ABANDONED",
    "TIMED_OUT",
    "bad_event",
    "body_too_large",
    "corrupt_body",
    "crossed_answer",
    "cut_error",
    "detach_request",
    "error_from_response",
    "error_object",
    "event_too_large",
    "json_body",
    "not_a_stream",
    "not_an_answer",
    "openai_fields",
    "read_error",
    "request_id_of",
    "safe_cause",
    "send_error",
    "status_error_class",
    "stream_cut",
    "stream_ended_early",
    "stream_error_event",
    "stream_unfinished",
    "unasked_encoding",
]

# Why an attempt was cut short from another thread (see _transport.Attempt).
TIMED_OUT = "timed out"
ABANDONED = "abandoned"

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
    """The exception class for an HTTP status (openai-python's names)."""
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


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
) -> dict[str, Any]:
    """The decoded JSON object of a 2xx answer, checked for the keys the route must have, with
    the key scrubbed out of it."""
    try:
        # Decoded here, not by json.loads: given bytes it would take UTF-16 and UTF-32 too.
        data = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        data = None
        problem = f"the body is not valid UTF-8 (byte {exc.start})"
    except ValueError:
        data = None
        problem = f"expected JSON, got {exchange.headers.get('content-type') or 'no content type'}"
    else:
        data = exchange.clean_json(data, body)
        if not isinstance(data, dict):
            problem = f"expected a JSON object, got {type(data).__name__}"
        else:
            missing = [key for key in required if key not in data]
            if not missing:
                return data
            problem = f"JSON lacks {', '.join(missing)}"
    text = exchange.quote(body)
    request_id = request_id_of(exchange.headers, text)
    status = exchange.status_code
    raise APIResponseValidationError(
        f"{status} from {route}: {problem}"
        f"{_rid_suffix(request_id)}; body: {snippet(text)!r}"
        " (a wrong base_url or a proxy answers like this)",
        response=exchange.snapshot(text),
        status_code=status,
        request_id=request_id,
        body=data if data is not None and len(body) <= ERROR_BODY_LIMIT else text,
    )


def not_a_stream(exchange: Exchange, *, route: str) -> APIResponseValidationError:
    """The exception for a 2xx answer to a streamed call that is not an event stream."""
    text = exchange.quote(exchange.read_error_body())
    request_id = request_id_of(exchange.headers, text)
    ctype = exchange.headers.get("content-type") or "no content type"
    return APIResponseValidationError(
        f"{exchange.status_code} from {route}: expected an event stream, got {ctype}"
        f"{_rid_suffix(request_id)}; body: {snippet(text)!r}",
        response=exchange.snapshot(text),
        status_code=exchange.status_code,
        request_id=request_id,
        body=text,
    )


def not_an_answer(exchange: Exchange, *, route: str) -> APIResponseValidationError:
    """The exception for a 1xx that reached us as the answer (a 101: the transport reads past
    every other one). Its body is not read: what follows a protocol switch is not HTTP."""
    return APIResponseValidationError(
        f"{exchange.status_code} from {route}: an informational answer where the answer "
        "should be (a protocol switch was never asked for); its connection was closed",
        response=exchange.snapshot(""),
        status_code=exchange.status_code,
        request_id=request_id_of(exchange.headers),
    )


def error_from_response(exchange: Exchange, *, route: str, now: float) -> APIStatusError:
    """The exception for a non-2xx answer. Reads at most ``ERROR_BODY_LIMIT`` of its body:
    the rest is left unread (the connection is then closed, not reused). Every field is taken
    from the body once it is scrubbed."""
    status = exchange.status_code
    raw = exchange.read_error_body()
    text = exchange.quote(raw)
    document: Any
    try:
        document = exchange.clean_json(json.loads(_text(raw[:ERROR_BODY_LIMIT])), raw)
    except ValueError:
        # openai-python's body for an answer that is not JSON: its text, stripped.
        document = text.strip()
        server_message = snippet(text) or exchange.reason or "no body"
    else:
        server_message = _server_message(document, text)
    body = error_object(document)
    code, error_type, error_param = openai_fields(body)
    request_id = request_id_of(exchange.headers, server_message)
    message = f"{status} from {route}: {server_message}"
    if request_id and request_id not in server_message:
        message += _rid_suffix(request_id)
    if 300 <= status < 400:
        location = exchange.headers.get("location")
        message += f" (redirected to {location!r}: check base_url)"
    elif status in (401, 404):
        message += " (a wrong base_url answers like this too)"
    return status_error_class(status)(
        message,
        response=exchange.snapshot(text),
        status_code=status,
        request_id=request_id,
        body=body,
        code=code,
        retry_after=parse_retry_after(exchange.headers, now),
        type=error_type,
        param=error_param,
        document=document,
    )


def error_object(document: Any) -> Any:
    """openai-python's ``APIError.body`` of an error document: what its ``"error"`` holds
    (whatever that is, null included), the document itself when it has no ``"error"`` or is
    no object. So ``e.body["message"]`` reads the message of an OpenAI-shaped error."""
    return document.get("error", document) if isinstance(document, Mapping) else document


def openai_fields(body: Any) -> tuple[str | None, Any, Any]:
    """``(code, type, param)`` of an error object, by openai-python's rule, so that code
    comparing them ports: ``code`` as text (``0`` is ``"0"``, ``""`` stays ``""``), ``type``
    and ``param`` as the server sent them (CometAPI's ``""`` stays ``""``); all None when the
    body is no object."""
    if not isinstance(body, Mapping):
        return None, None, None
    code = body.get("code")
    return (str(code) if code is not None else None, body.get("type"), body.get("param"))


def _server_message(document: Any, text: str) -> str:
    """The server's message, from a scrubbed error document and its scrubbed text."""
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        return str(message) if message else snippet(text)
    if isinstance(error, str):
        return error
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])
    return snippet(text)


def _rid_suffix(request_id: str | None) -> str:
    return f" (request id: {request_id})" if request_id else ""


def _text(body: bytes | bytearray) -> str:
    return body.decode("utf-8", "replace")


# -- the connection ---------------------------------------------------------------------------


def detach_request(exc: requests.RequestException) -> requests.RequestException:
    """``exc`` without the request it failed to send (its ``Authorization`` header holds the
    key), so that the transport error chained to ours keeps none."""
    exc.request = None
    exc.response = None
    return exc


def crossed_answer(
    what: str, sent: str, echoed: str, snapshot: ResponseSnapshot, status: int
) -> APIResponseValidationError:
    """An answer that names another request than the one sent (``X-Client-Request-Id``)."""
    return _invalid_answer(
        what,
        f"the answer belongs to another request (it names client request id {echoed!r}, "
        f"this request was {sent!r}); its connection was closed",
        snapshot,
        status,
    )


def _invalid_answer(
    what: str, problem: str, snapshot: ResponseSnapshot, status: int
) -> APIResponseValidationError:
    """An answer the transport refuses: one wording (``what: problem``) and the answer's
    head kept, for every such refusal."""
    return APIResponseValidationError(f"{what}: {problem}", response=snapshot, status_code=status)


def send_error(
    exc: BaseException,
    what: str,
    cut_reason: str | None,
    budget: float,
    secret: str | None,
    *,
    status: int | None = None,
) -> CometError:
    """The exception for a request that got no usable answer (``requests`` raised while
    sending or reading the head; ``status``: the status line's, when one was read). What the
    server sent can be in the reason (a status line http.client could not read): it is
    scrubbed."""
    if cut_reason is not None:
        return cut_error(cut_reason, budget, what)
    if isinstance(exc, requests.Timeout):
        return APITimeoutError(f"{what}: timed out ({type(exc).__name__})")
    reason = scrub(_reason(exc), secret)
    if status is not None and 200 <= status < 300:
        # The server said yes, then sent a head we cannot frame (10,000 header lines, two
        # Content-Lengths, a 1 MiB line). The request was processed, maybe billed: sending it
        # again is paying again (5-6 times a call, 0 successes), so it is not retried.
        return APIResponseValidationError(
            f"{what}: the server answered {status} with a head that cannot be read "
            f"({type(exc).__name__}: {reason}); not retried, as it was processed upstream",
            response=ResponseSnapshot.of(
                status_code=status,
                reason="",
                headers={},
                url=what.split(" ", 1)[-1],
                text="",
                secret=secret,
            ),
            status_code=status,
        )
    if _tls_for_good(exc):
        return TLSError(f"{what}: TLS failed, not retried ({type(exc).__name__}: {reason})")
    return APIConnectionError(f"{what}: connection error ({type(exc).__name__}: {reason})")


# TLS failures a retry meets again (an untrusted certificate, TLS to a port that speaks HTTP,
# HTTP to a port that speaks TLS); any other (a reset mid-handshake, an EOF) may heal.
_PERMANENT_TLS = ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST")


def _tls_for_good(exc: BaseException) -> bool:
    for inner in _nested(exc):
        if isinstance(inner, ssl.SSLCertVerificationError):
            return True
        if isinstance(inner, ssl.SSLError):
            return any(name in str(inner.reason or "") for name in _PERMANENT_TLS)
    return False


def read_error(
    exc: BaseException, what: str, cut_reason: str | None, budget: float, secret: str | None
) -> CometError:
    """The exception for a body whose reading failed (its reason scrubbed: a bad chunk
    length quotes the bytes the server sent)."""
    if cut_reason is not None:
        return cut_error(cut_reason, budget, what)
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return APITimeoutError(f"{what}: reading the answer timed out ({type(exc).__name__})")
    reason = scrub(_reason(exc), secret)
    return APIConnectionError(f"{what}: the connection broke ({type(exc).__name__}: {reason})")


def safe_cause(exc: BaseException, secret: str | None) -> BaseException | None:
    """What our exception may chain to: ``exc`` without the request it failed to send (its
    ``Authorization`` header holds the key), or None when its text, or that of anything it
    chains to, quotes the key (a status line or chunk length the server filled with it)."""
    if isinstance(exc, requests.RequestException):
        detach_request(exc)
    link: BaseException | None = exc
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if holds_secret(repr(link), secret) or holds_secret(str(link), secret):
            return None
        link = link.__cause__ or link.__context__
    return exc


def cut_error(reason: str, budget: float, what: str) -> CometError:
    """An attempt cut from another thread: its deadline passed, or its scope was abandoned."""
    if reason == TIMED_OUT:
        return APITimeoutError(
            f"{what}: no answer within the {budget:.3g}s it had "
            "(the call's time budget or the read timeout)"
        )
    if reason == ABANDONED:
        return ClientClosedError(f"{what}: abandoned, the client or the map was stopped")
    return APIConnectionError(f"{what}: cut ({reason})")


def _reason(exc: BaseException) -> str:
    # requests nests urllib3's error (MaxRetryError(reason=NewConnectionError(...))); the
    # innermost one says what happened, the outer ones mostly repeat the URL.
    *_, inner = _nested(exc)
    return str(inner)[:200]


def _nested(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors nested in it, outermost first: through ``.reason`` (urllib3)
    or a first argument that is an exception (requests, http.client)."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        yield inner
        nxt = getattr(inner, "reason", None)
        if isinstance(nxt, BaseException):
            inner = nxt
        elif inner.args and isinstance(inner.args[0], BaseException):
            inner = inner.args[0]
        else:
            inner = None


# -- the body ---------------------------------------------------------------------------------


def body_too_large(
    what: str, limit: int, snapshot: ResponseSnapshot, status: int
) -> APIResponseValidationError:
    return _invalid_answer(
        what,
        f"the answer's body is larger than max_response_bytes={limit} "
        "(raise it on the client if such answers are expected)",
        snapshot,
        status,
    )


def unasked_encoding(
    what: str, name: str, accepted: str, snapshot: ResponseSnapshot, status: int
) -> APIResponseValidationError:
    return _invalid_answer(
        what,
        f"the answer is encoded as {name!r}, which was not asked for (Accept-Encoding: {accepted})",
        snapshot,
        status,
    )


def corrupt_body(
    what: str, exc: BaseException, snapshot: ResponseSnapshot, status: int
) -> APIResponseValidationError:
    return _invalid_answer(what, f"the compressed body is corrupt ({exc})", snapshot, status)


# -- streams ----------------------------------------------------------------------------------


def stream_ended_early(route: str) -> APIConnectionError:
    """A stream that ended before its first event (retried: nothing was received)."""
    return APIConnectionError(f"{route}: the stream ended before its first event")


def stream_unfinished(what: str) -> APIConnectionError:
    """A stream whose body ended before its end mark (``what``: the mark, or the object)."""
    return APIConnectionError(f"it ended without {what}")


def event_too_large(exchange: Exchange, route: str, exc: BaseException) -> APIError:
    return APIResponseValidationError(
        f"{route}: {exc}", response=exchange.snapshot(""), status_code=exchange.status_code
    )


def bad_event(exchange: Exchange, route: str, data: str | None) -> APIError:
    """A stream event that is not JSON (``data`` quoted) or not a JSON object (None)."""
    what = (
        f"a stream event is not JSON: {snippet(exchange.scrub(data))!r}"
        if data is not None
        else "a stream event is not a JSON object"
    )
    return APIResponseValidationError(
        f"{route}: {what}",
        response=exchange.snapshot(""),
        status_code=exchange.status_code,
    )


def stream_error_event(exchange: Exchange, route: str, error: Any, chunks: int) -> APIStatusError:
    """An error sent inside a stream (already scrubbed, as every event is), as the exception
    its status or code names."""
    err = error if isinstance(error, dict) else {"message": str(error)}
    code, kind, param = openai_fields(error)
    given = err.get("status")
    status: int = (
        given
        if isinstance(given, int)
        else (429 if code and ("rate" in code or "limit" in code) else 500)
    )
    message = snippet(str(err.get("message") or "error"))
    return status_error_class(status)(
        f"{route}: error inside the stream after {chunks} chunk(s): {message}",
        response=exchange.snapshot(""),
        status_code=status,
        body=error,
        code=code,
        type=kind,
        param=param,
    )


def stream_cut(route: str, chunks: int, exc: CometError) -> CometError:
    """What a stream raises when it ends on ``exc``: a broken or silent connection says how
    far the stream got (a timeout stays a timeout); any other error is raised as it is."""
    if isinstance(exc, APIConnectionError):
        kind = APITimeoutError if isinstance(exc, APITimeoutError) else APIConnectionError
        return kind(f"{route}: the stream was cut after {chunks} chunk(s): {exc}")
    return exc
