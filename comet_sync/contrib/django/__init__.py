"""Django integration (``pip install 'comet-sync[django]'``).

settings.py::

    INSTALLED_APPS = [..., "comet_sync.contrib.django"]
    MIDDLEWARE = [..., "comet_sync.contrib.django.CometSyncMiddleware"]
    COMET_SYNC = {"max_concurrency": 8, "total_timeout": 60, "view_deadline": 25}
    # the key: settings.COMETAPI_KEY, else the COMETAPI_KEY environment variable

views.py::

    from comet_sync.contrib.django import get_client

    def ask(request):
        reply = get_client().chat.completions.create(model="gpt-4o-mini", messages=[...])

``COMET_SYNC`` takes ``CometClient``'s keyword arguments, plus ``view_deadline`` (seconds that
every call of one request must fit in) and ``error_handling`` (default True: the middleware
answers upstream failures with 503 + Retry-After / 504 / 502 and a JSON body). For Prometheus,
route a URL to ``metrics_view`` (needs ``comet-sync[prometheus]``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from typing import Any, Callable

from ..._call.deadline import deadline
from ..._client import CometClient
from ..._exceptions import APIError
from .._errors import error_response, require

require("django", "django")

__all__ = [
    "CometSyncMiddleware",
    "client_settings",
    "get_client",
    "metrics_view",
    "reset_client",
    "settings_dict",
]

_FRAMEWORK_KEYS = ("view_deadline", "error_handling")
_lock = threading.Lock()  # guards _client
_client: CometClient | None = None
_pid: int | None = None


def settings_dict() -> dict[str, Any]:
    from django.conf import settings

    return dict(getattr(settings, "COMET_SYNC", {}) or {})


def client_settings() -> dict[str, Any]:
    """``CometClient``'s keyword arguments from the settings: ``COMET_SYNC`` without the
    middleware's own keys, and ``COMETAPI_KEY`` / ``COMETAPI_BASE_URL`` unless it gives them.
    (The Celery integration reads them too.)"""
    from django.conf import settings

    kwargs = {k: v for k, v in settings_dict().items() if k not in _FRAMEWORK_KEYS}
    key = getattr(settings, "COMETAPI_KEY", None)
    if key and "api_key" not in kwargs:
        kwargs["api_key"] = key
    base_url = getattr(settings, "COMETAPI_BASE_URL", None)
    if base_url and "base_url" not in kwargs:
        kwargs["base_url"] = base_url
    return kwargs


def get_client() -> CometClient:
    """The process's client, created on first use (thread-safe) from the settings."""
    global _client, _pid
    client = _client
    if client is not None and _pid == os.getpid():
        return client
    with _lock:
        if _client is None or _pid != os.getpid():
            _client = CometClient(**client_settings())
            _pid = os.getpid()
            atexit.register(_client.close)
        return _client


def reset_client() -> None:
    """Close and forget the process's client (tests that change settings call this)."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.close()


class CometSyncMiddleware:
    """Applies ``view_deadline`` to each request and maps upstream failures to answers."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        options = settings_dict()
        self.view_deadline: float | None = options.get("view_deadline")
        self.error_handling: bool = bool(options.get("error_handling", True))

    def __call__(self, request: Any) -> Any:
        scope = (
            deadline(float(self.view_deadline))
            if self.view_deadline
            else (contextlib.nullcontext())
        )
        with scope:
            return self.get_response(request)

    def process_exception(self, request: Any, exception: BaseException) -> Any:
        if not self.error_handling or not isinstance(exception, APIError):
            return None
        from django.http import JsonResponse

        status, headers, body = error_response(exception)
        response = JsonResponse(body, status=status)
        for name, value in headers.items():
            response[name] = value
        return response


def metrics_view(request: Any) -> Any:
    """Prometheus metrics of the process's client."""
    from django.http import HttpResponse

    from ..prometheus import metrics_text

    body, content_type = metrics_text(get_client())
    return HttpResponse(body, content_type=content_type)
