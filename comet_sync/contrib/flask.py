"""Flask integration (``pip install 'comet-sync[flask]'``).

>>> from comet_sync.contrib.flask import CometSync, get_client
>>> app = Flask(__name__)
>>> app.config["COMET_SYNC_VIEW_DEADLINE"] = 25      # seconds, for every view
>>> CometSync(app)
>>> @app.post("/ask")
... def ask():
...     reply = get_client().chat.completions.create(model="gpt-4o-mini", messages=[...])

Configuration from ``app.config``: ``COMETAPI_KEY`` and ``COMETAPI_BASE_URL`` (else the
environment), ``COMET_SYNC_MAX_CONCURRENCY``, ``COMET_SYNC_MAX_RETRIES``,
``COMET_SYNC_TIMEOUT``, ``COMET_SYNC_TOTAL_TIMEOUT``, ``COMET_SYNC_RPM``, ``COMET_SYNC_TPM``;
``COMET_SYNC_VIEW_DEADLINE`` caps every call a request makes (see ``comet_sync.deadline``);
``COMET_SYNC_ERROR_HANDLERS`` (default True) answers upstream failures with 503 +
Retry-After / 504 / 502 and a JSON body instead of a 500 page; ``COMET_SYNC_METRICS_URL``
(e.g. ``"/metrics"``) serves Prometheus metrics (needs ``comet-sync[prometheus]``).

One client per process: the app object is built once per worker process (or once before a
``--preload`` fork, which the client survives: a forked child rebuilds its connections).
"""

from __future__ import annotations

import atexit
from typing import Any

from .._call.deadline import deadline
from .._client import CometClient
from .._exceptions import APIError
from ._errors import error_response, require

_flask = require("flask", "flask")

__all__ = ["CometSync", "get_client"]

EXTENSION = "comet_sync"
_SETTINGS = {
    "COMETAPI_KEY": "api_key",
    "COMETAPI_BASE_URL": "base_url",
    "COMET_SYNC_MAX_CONCURRENCY": "max_concurrency",
    "COMET_SYNC_MAX_RETRIES": "max_retries",
    "COMET_SYNC_TIMEOUT": "timeout",
    "COMET_SYNC_TOTAL_TIMEOUT": "total_timeout",
    "COMET_SYNC_RPM": "rpm",
    "COMET_SYNC_TPM": "tpm",
}


class CometSync:
    """The extension: ``CometSync(app)`` or ``ext = CometSync(); ext.init_app(app)``."""

    def __init__(self, app: Any = None, **client_kwargs: Any) -> None:
        self._client_kwargs = client_kwargs
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        config = app.config
        kwargs = {
            arg: config[name] for name, arg in _SETTINGS.items() if config.get(name) is not None
        }
        client = CometClient(**{**kwargs, **self._client_kwargs})
        app.extensions[EXTENSION] = client
        atexit.register(client.close)

        view_deadline = config.get("COMET_SYNC_VIEW_DEADLINE")
        if view_deadline:

            @app.before_request
            def _enter_deadline() -> None:
                manager = deadline(float(view_deadline))
                manager.__enter__()
                _flask.g._comet_sync_deadline = manager

            @app.teardown_request
            def _leave_deadline(exc: BaseException | None) -> None:
                manager = _flask.g.pop("_comet_sync_deadline", None)
                if manager is not None:
                    manager.__exit__(None, None, None)

        if config.get("COMET_SYNC_ERROR_HANDLERS", True):
            app.register_error_handler(APIError, _handle_api_error)

        url = config.get("COMET_SYNC_METRICS_URL")
        if url:
            from .prometheus import metrics_text

            def metrics() -> Any:
                body, content_type = metrics_text(client)
                return _flask.Response(body, mimetype=content_type)

            app.add_url_rule(url, "comet_sync_metrics", metrics)

    @property
    def client(self) -> CometClient:
        return get_client()


def get_client(app: Any = None) -> CometClient:
    """The process's client, from the current app (or the one given)."""
    target = app if app is not None else _flask.current_app
    try:
        return target.extensions[EXTENSION]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError("CometSync(app) has not been set up on this app") from None


def _handle_api_error(exc: APIError) -> Any:
    status, headers, body = error_response(exc)
    response = _flask.jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response
