"""Building a request: its URL, headers and body, once per call (retries resend the same)."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from typing import Any, NoReturn, SupportsIndex

from .._config import CallOptions
from .._exceptions import InvalidArgumentError, RequestSnapshot
from .._http.transport import CLIENT_REQUEST_ID
from .._rate.protocol import LimiterProtocol
from .estimate import estimate_tokens

__all__ = ["Request", "build_request"]


class Request:
    """One call's request, as every attempt sends it."""

    __slots__ = ("body", "cost", "headers", "method", "model", "route", "snapshot", "url")

    def __init__(
        self,
        method: str,
        route: str,
        url: str,
        model: str | None,
        headers: dict[str, str],
        body: bytes | None,
        cost: float,
        snapshot: RequestSnapshot,
    ) -> None:
        self.method = method
        self.route = route
        self.url = url
        self.model = model
        self.headers = headers
        self.body = body
        self.cost = cost  # estimated tokens, for a limiter pacing this model's tokens
        # What an exception of this call keeps of it (``exc.request``): method and URL only.
        self.snapshot = snapshot

    def __repr__(self) -> str:  # never the headers: Authorization holds the key
        return f"<Request {self.method} {self.route} model={self.model!r}>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("a request carries the API key in its headers: it is never pickled")


def build_request(
    method: str,
    base_url: str,
    route: str,
    payload: dict[str, Any] | None,
    options: CallOptions,
    *,
    auth_header: str,
    secret: str,
    accept: str,
    limiter: LimiterProtocol,
) -> Request:
    headers = {"Authorization": auth_header, "Accept": accept}
    body = None
    if payload is not None:
        body = _encode(payload)
        headers["Content-Type"] = "application/json"
    headers.update(options.extra_headers)
    if not any(name.lower() == CLIENT_REQUEST_ID.lower() for name in options.extra_headers):
        headers[CLIENT_REQUEST_ID] = uuid.uuid4().hex
    model = payload.get("model") if payload is not None else None
    name = model if isinstance(model, str) else None
    # Estimating tokens reads the whole body: only for a limiter that paces them.
    cost = (
        float(estimate_tokens(payload))
        if payload is not None and limiter.paces_tokens(name)
        else 0.0
    )
    url = base_url + route
    if options.query:
        url += "?" + urllib.parse.urlencode(options.query)
    snapshot = RequestSnapshot.of(method, url, secret)
    return Request(method, route, url, name, headers, body, cost, snapshot)


def _encode(payload: dict[str, Any]) -> bytes:
    """The JSON body; text that is not Unicode (a lone surrogate, which JSON input can spell
    as ``"\\ud800"``) is refused naming where it is, before anything is sent."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        where = _not_unicode(payload, "params") or "params"
        raise InvalidArgumentError(
            where, "holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
        ) from None


def _not_unicode(value: Any, where: str) -> str | None:
    """The path to the first string in ``value`` that cannot be UTF-8 encoded."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _not_unicode(key, where) or _not_unicode(item, f"{where}[{key!r}]")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _not_unicode(item, f"{where}[{i}]")
            if found:
                return found
    return None
