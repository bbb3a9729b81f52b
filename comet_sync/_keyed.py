"""The runtimes a client keeps for its views with another API key or base URL.

``client.with_options(api_key=tenant_key)`` made per request must not build a connection pool
per request, nor share the parent's: the pool, the limiter (a server's pace is granted per key
and per endpoint), the metrics and the response cache belong to one key at one endpoint. So
each (key, URL) gets one client of its own, built on first use and reused by every view with
them, and closed with the client that owns it.

Entries are found by a digest of the key, so the table itself (in a debugger, a heap dump)
never spells one. Past ``MAX_KEYED`` the least recently used entry is let go of: it is not
closed, since a view may still be using it, and ends when its last view does (it is then
collected, its idle connections and threads with it), or when the owner closes.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ._client import CometClient

__all__ = ["MAX_KEYED", "KeyedRuntimes"]

# Distinct keys and URLs one client serves at once through views (tenants, say). Each holds a
# pool of idle connections; a process serving more should hold a client per tenant.
MAX_KEYED = 64


class KeyedRuntimes:
    """Thread-safe: one lock guards the table. A runtime is built under it, so that two
    threads asking for the same key at once build one; building opens no connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[bytes, str], CometClient] = OrderedDict()
        # Entries let go of while views may still use them: closed with the owner if alive.
        self._let_go: weakref.WeakSet[CometClient] = weakref.WeakSet()

    def get_or_build(
        self, api_key: str, base_url: str, build: Callable[[], CometClient]
    ) -> CometClient:
        entry = (hashlib.sha256(api_key.encode()).digest(), base_url)
        with self._lock:
            found = self._entries.get(entry)
            if found is not None:
                self._entries.move_to_end(entry)
                return found
            built = self._entries[entry] = build()
            if len(self._entries) > MAX_KEYED:
                _, evicted = self._entries.popitem(last=False)
                self._let_go.add(evicted)
                # Once its last view is gone: its sockets and its watchdog thread (a daemon
                # that would otherwise wake every minute for ever) go with it. Idle executor
                # threads end by themselves when their executor is collected.
                weakref.finalize(evicted, evicted._transport.close)
            return built

    def take_all(self) -> list[CometClient]:
        """Every runtime, emptying the table (the owner is closing)."""
        with self._lock:
            taken = [*self._entries.values(), *self._let_go]
            self._entries.clear()
            self._let_go = weakref.WeakSet()
        return taken

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held mid-fork). The
        runtimes themselves rebuild their own connections."""
        self._lock = threading.Lock()
