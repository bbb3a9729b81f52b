"""One client per Celery worker process: its settings, when it is built, when it is closed.

A prefork worker's parent forks its pool children after importing the app module, so a client
built at import (or in the parent) would be inherited by every child. The client is therefore
built in each process that runs tasks, after any fork: in a prefork child when it starts
(``worker_process_init``), and on first use everywhere else (the ``solo`` and ``threads`` pools
run tasks in the worker's own process, where the ``threads`` pool's threads share it). It is
remembered with the pid that built it, so a process forked later (a task that forks, say)
builds its own instead of reaching for its parent's connections.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from ..._client import CometClient
from ..._exceptions import InvalidArgumentError
from ..redis import RedisLimiter

__all__ = ["DEFAULT_MAX_WAIT", "client", "is_set_up", "max_wait", "redis_location", "setup"]

logger = logging.getLogger("comet_sync")

# The celery config key holding the settings (``app.conf.comet_sync``; with Django's
# ``config_from_object("django.conf:settings", namespace="CELERY")``, ``CELERY_COMET_SYNC``).
CONF_KEY = "comet_sync"
# On a worker the client's max_wait defaults to this, not 30 s: a server wait longer than it is
# not slept in a worker slot but turned into a task retry (see CometTask).
DEFAULT_MAX_WAIT = 5.0
# How long closing at worker shutdown lets calls still on the wire finish (warm shutdown has
# already waited for the tasks, so normally none are).
CLOSE_GRACE = 1.0

_CLIENT_KEYS = frozenset(inspect.signature(CometClient.__init__).parameters) - {"self", "limiter"}
_REDIS_KEYS = frozenset(
    {"url", "namespace", "socket_timeout"}
    | (set(inspect.signature(RedisLimiter.__init__).parameters) - {"self", "redis_client"})
)
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class _Process:
    """This process's set-up app and client. ``lock`` guards every field; it is held while a
    client is built (no I/O: redis-py connects on first use) and never across a call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.app: Any = None
        self.overrides: dict[str, Any] = {}
        self.in_worker = False
        self.client: CometClient | None = None
        self.pid: int | None = None


_state = _Process()
_connected = False


def _after_fork_in_child() -> None:
    # Another thread may have held the lock when this process forked (a threads pool, a task
    # forking): its copy here would never be released.
    _state.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def setup(app: Any, **settings: Any) -> None:
    """Set up comet_sync for the Celery ``app``: call it once in the module defining the app.

    Settings are ``CometClient``'s keyword arguments (but ``limiter``) plus ``redis``: the
    shared limiter, a dict of ``RedisLimiter`` options with ``url`` (default: the app's broker
    URL) and ``namespace`` (default ``comet_sync:<app name>``), or False for none. Read when
    a worker builds its client, key by key from the first that has it: the keyword arguments
    given here, ``app.conf.comet_sync``, Django's settings (``COMET_SYNC``, ``COMETAPI_KEY``,
    ``COMETAPI_BASE_URL``; a ``limiter`` there is left to the web processes). ``max_wait``
    defaults to 5 s. It also registers the task that runs a batch's chunks on the workers
    (``run_batch_on``, ``comet-sync batch --celery``).
    """
    _check(settings, "setup()")
    global _connected
    # The batch chunk task: every worker started from this app's module has it.
    from ._chunk import register

    register(app)
    with _state.lock:
        _state.app = app
        _state.overrides = dict(settings)
        client, _state.client = _state.client, None
    if client is not None:
        client.close()
    if not _connected:
        from celery import signals

        # weak=False: the handlers are module functions, but Celery's weak references would
        # drop a bound method; dispatch_uid keeps a second setup() from connecting twice.
        signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="comet_sync.init")
        signals.worker_process_init.connect(
            _on_process_init, weak=False, dispatch_uid="comet_sync.process_init"
        )
        signals.worker_process_shutdown.connect(
            _on_shutdown, weak=False, dispatch_uid="comet_sync.process_shutdown"
        )
        signals.worker_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="comet_sync.stop")
        _connected = True


def client() -> CometClient:
    """This worker process's client (built on first use in a solo or threads worker, at start
    in a prefork child). Raises ``RuntimeError`` outside a worker set up with ``setup(app)``
    (eager mode, ``task_always_eager``, counts as a worker)."""
    state = _state
    current = state.client
    if current is not None and state.pid == os.getpid():
        return current
    with state.lock:
        if state.client is not None and state.pid == os.getpid():
            return state.client
        if state.app is None:
            raise RuntimeError(
                "comet_sync.contrib.celery.client() needs comet_sync.contrib.celery.setup(app) "
                "in the module that defines the Celery app"
            )
        if not (state.in_worker or state.app.conf.task_always_eager):
            raise RuntimeError(
                "comet_sync.contrib.celery.client() is for tasks running in a Celery worker; "
                "this process is not one (build a CometClient of your own here)"
            )
        # A client inherited across a fork belongs to the parent: leave it (the parent
        # closes it), build this process's own.
        state.client = _build(state.app, state.overrides)
        state.pid = os.getpid()
        return state.client


def is_set_up(app: Any) -> bool:
    """Whether ``setup(app)`` ran in this process (the module defining ``app`` calls it)."""
    with _state.lock:
        return _state.app is app


def redis_location(app: Any) -> tuple[str, str]:
    """The Redis URL and key namespace of ``app``'s comet_sync state: the shared limiter's
    (``redis``'s ``url`` and ``namespace``), else the broker's and ``comet_sync:<app name>``.
    Raises ``InvalidArgumentError`` when the broker is not Redis and no URL is given."""
    with _state.lock:
        overrides = dict(_state.overrides) if _state.app is app else {}
    shared = _settings(app, overrides).get("redis")
    options = dict(shared) if isinstance(shared, Mapping) else {}
    url = options.get("url") or _broker_url(app)
    namespace = options.get("namespace") or _namespace(app)
    return str(url), str(namespace)


def _namespace(app: Any) -> str:
    return f"comet_sync:{app.main or 'celery'}"


def max_wait() -> float:
    """The longest server wait this process's client sleeps through (its ``max_wait``)."""
    current = _state.client
    if current is not None and _state.pid == os.getpid():
        return current.config.retry.max_wait
    return float(_settings(_state.app, _state.overrides).get("max_wait", DEFAULT_MAX_WAIT))


def _settings(app: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Key by key, the first that has it: setup()'s keyword arguments, the Celery config,
    Django's settings (``COMET_SYNC``, ``COMETAPI_KEY``, ``COMETAPI_BASE_URL``, as the Django
    integration reads them)."""
    merged = _django_settings()
    configured = dict((app.conf.get(CONF_KEY) if app is not None else None) or {})
    _check(configured, f"app.conf.{CONF_KEY}")
    merged.update(configured)
    merged.update(overrides)
    return merged


def _django_settings() -> dict[str, Any]:
    # Only in a Django project (its Celery module sets DJANGO_SETTINGS_MODULE first); Django
    # is never imported otherwise.
    if not os.environ.get("DJANGO_SETTINGS_MODULE") and "django.conf" not in sys.modules:
        return {}
    try:
        from django.conf import settings
    except ImportError:
        return {}
    if not (settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
        return {}
    from ..django import client_settings

    options = client_settings()
    # A limiter built for the web processes is theirs: a worker builds its own after the fork.
    options.pop("limiter", None)
    _check(options, "Django's COMET_SYNC")
    return options


def _build(app: Any, overrides: Mapping[str, Any]) -> CometClient:
    options = _settings(app, overrides)
    shared = options.pop("redis", {})
    options.setdefault("max_wait", DEFAULT_MAX_WAIT)
    limiter = None
    if shared is not False:
        limiter_options = dict(shared) if isinstance(shared, Mapping) else {}
        url = limiter_options.pop("url", None) or _broker_url(app)
        namespace = limiter_options.pop("namespace", None) or _namespace(app)
        limiter = RedisLimiter.from_url(url, namespace=namespace, **limiter_options)
    return CometClient(limiter=limiter, **options)


def _broker_url(app: Any) -> str:
    url = app.conf.broker_url
    if isinstance(url, (list, tuple)):
        url = url[0] if url else None
    if isinstance(url, str):
        url = url.split(";")[0].strip()  # Celery's failover list: the first broker
    if not isinstance(url, str) or not url.startswith(_REDIS_SCHEMES):
        # The URL is not quoted: it may carry a password.
        raise InvalidArgumentError(
            "redis",
            "the app's broker is not Redis: give the shared limiter's Redis as "
            "{'redis': {'url': ...}}, or {'redis': False} for none",
        )
    return url


def _check(settings: Mapping[str, Any], where: str) -> None:
    for key, value in settings.items():
        if key == "limiter":
            raise InvalidArgumentError(
                "limiter",
                f"not taken in {where}: each worker process builds its own limiter after the "
                "fork; give RedisLimiter's options as {'redis': {...}}",
            )
        if key == "redis":
            if value is False or value is True:
                continue
            if not isinstance(value, Mapping):
                raise InvalidArgumentError("redis", f"expected a dict or False in {where}")
            unknown = sorted(set(value) - _REDIS_KEYS)
            if unknown:
                raise InvalidArgumentError("redis", f"unknown options {unknown} in {where}")
        elif key not in _CLIENT_KEYS:
            raise InvalidArgumentError(key, f"not a CometClient argument (in {where})")


def _on_worker_init(**_: Any) -> None:
    # The worker's own process: where the solo and threads pools run their tasks.
    with _state.lock:
        _state.in_worker = True


def _on_process_init(**_: Any) -> None:
    # A prefork child, just forked: build its client now, before its first task.
    with _state.lock:
        _state.in_worker = True
    try:
        client()
    except Exception:  # a task calling client() raises it again, where it is seen
        logger.exception("comet_sync: the worker process's client could not be built")


def _on_shutdown(**_: Any) -> None:
    with _state.lock:
        current, _state.client = _state.client, None
        mine = _state.pid == os.getpid()
    if current is not None and mine:
        current.close(grace=CLOSE_GRACE)
