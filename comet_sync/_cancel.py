"""Stopping: what ``close()``, a stopped ``map`` and Ctrl-C do to calls already under way.

A :class:`Scope` is a set of calls that can be stopped together: a client's calls, one
``map``'s jobs. Stopping a scope happens in two steps:

* ``stop()``: nothing new leaves the process. Calls waiting for a slot, sleeping before a retry
  or held by our own pacing wake and raise :class:`ClientClosedError`; a call about to send
  raises instead.
* ``abandon()``: calls on the wire are cut (their sockets shut down) and raise too, so the
  threads running them end at once rather than when a slow server answers.

Scopes nest: stopping or abandoning a client stops and abandons every ``map`` of it. The scope
a call belongs to travels in a context variable, so a job submitted to an executor carries its
``map``'s scope into the engine; from there the call hands it on as an argument (to the
limiter's ``acquire``, to the transport). The client's sleep (:func:`interruptible_sleep`,
behind an injectable ``Clock.sleep(seconds)`` that has no room for it) still reads it here.

Thread safety: ``_lock`` guards the callbacks and children; callbacks run outside it, on the
thread that stops the scope. A stopped scope never starts again.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Callable

from ._exceptions import ClientClosedError

__all__ = ["Scope", "current", "entered", "interruptible_sleep"]


class Scope:
    """Calls that are stopped together."""

    def __init__(self, parent: Scope | None = None, *, what: str = "the client") -> None:
        self.what = what
        self.stopped: threading.Event = threading.Event()
        self.abandoned: bool = False
        self._lock = threading.Lock()
        self._on_stop: dict[int, Callable[[], None]] = {}
        self._on_abandon: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._children: weakref.WeakSet[Scope] = weakref.WeakSet()
        self.parent = parent
        if parent is not None:
            with parent._lock:
                parent._children.add(self)
            # A child made after its parent stopped starts stopped.
            if parent.stopped.is_set():
                self.stop()
            if parent.abandoned:
                self.abandon()

    def child(self, what: str) -> Scope:
        return Scope(self, what=what)

    # -- stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """No new request leaves: waiters and sleepers wake and raise."""
        with self._lock:
            if self.stopped.is_set():
                return
            self.stopped.set()
            callbacks, children = list(self._on_stop.values()), list(self._children)
        _spread(callbacks, children, Scope.stop)

    def abandon(self) -> None:
        """Stop, and cut the calls on the wire."""
        self.stop()
        with self._lock:
            if self.abandoned:
                return
            self.abandoned = True
            callbacks, children = list(self._on_abandon.values()), list(self._children)
        _spread(callbacks, children, Scope.abandon)

    def raise_if_stopped(self) -> None:
        if self.stopped.is_set():
            raise ClientClosedError(f"{self.what} was stopped; this call sends nothing more")

    # -- what runs when it stops ----------------------------------------------------------------

    @contextmanager
    def on_stop(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run ``callback`` if this scope (or an ancestor) stops while the block runs."""
        key = self._add(self._on_stop, callback, already=self.stopped.is_set())
        try:
            yield
        finally:
            self._remove(self._on_stop, key)

    def add_on_abandon(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` if this scope (or an ancestor) is abandoned; returns the function
        that unregisters it (call it when what it would cut has ended)."""
        key = self._add(self._on_abandon, callback, already=self.abandoned)
        return lambda: self._remove(self._on_abandon, key)

    def _add(
        self, table: dict[int, Callable[[], None]], callback: Callable[[], None], *, already: bool
    ) -> int:
        with self._lock:
            key = self._next
            self._next += 1
            table[key] = callback
        if already:
            callback()
        return key

    def _remove(self, table: dict[int, Callable[[], None]], key: int) -> None:
        with self._lock:
            table.pop(key, None)


def _spread(
    callbacks: list[Callable[[], None]], children: list[Scope], then: Callable[[Scope], None]
) -> None:
    """How a stop and an abandon spread, alike: this scope's callbacks first, then each child
    (``then``). Called outside the lock: a callback may register or unregister another."""
    for callback in callbacks:
        callback()
    for child in children:
        then(child)


_CURRENT: ContextVar[Scope | None] = ContextVar("comet_sync_scope", default=None)


def current() -> Scope | None:
    """The scope of the call running on this thread (or task), if any."""
    return _CURRENT.get()


class entered:
    """Run the block in ``scope`` unless it already runs in a scope of that scope's tree (a
    ``map`` job's scope is a child of its client's). A class, not a generator: every call
    enters one, and this is the cheaper of the two."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._token: Token[Scope | None] | None = None

    def __enter__(self) -> Scope:
        outer = _CURRENT.get()
        if outer is not None and _descends(outer, self._scope):
            return outer
        self._token = _CURRENT.set(self._scope)
        return self._scope

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)


def interruptible_sleep(seconds: float) -> None:
    """``time.sleep`` that a stop of the current scope cuts short (and then raises)."""
    scope = _CURRENT.get()
    if scope is None:
        time.sleep(max(seconds, 0.0))
        return
    if seconds > 0:
        scope.stopped.wait(seconds)
    scope.raise_if_stopped()


def _descends(scope: Scope, ancestor: Scope) -> bool:
    node: Scope | None = scope
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False
