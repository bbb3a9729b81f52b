"""The hook through which an observer (``comet_sync.contrib.otel``) sees each call.

Off by default: :data:`OBSERVER` is None, and all a call pays is reading it once. When an
observer is installed, each call it wants to follow gets a :class:`CallWatch`, which the core
tells what happens, in order, on the thread running the call (a stream's end may come on the
thread closing it, or in the garbage collector: once, after everything else).

This module imports nothing beyond the standard library: the core depends on the protocol,
never on OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._rate.protocol import LimiterProtocol
    from ._records import RequestRecord

__all__ = ["OBSERVER", "CallWatch", "Observer", "set_observer"]


class CallWatch(Protocol):
    """One logical call, seen from outside. Must never raise into the call."""

    def sending(self, headers: dict[str, str], resend_count: int, queued: float) -> None:
        """An attempt is about to be sent with ``headers`` (this attempt's own copy, which
        the watch may add to: trace context); ``queued`` is the seconds our limiter held it
        (a slot, the pace, a hold), on the client's clock."""

    def off_wire(self, status: int | None) -> None:
        """The attempt that was sent ended: its answer read (``status``), or its failure
        (``status`` None when no answer came; a stream's attempt ends with the stream)."""

    def retrying(self, error: BaseException, wait: float) -> None:
        """``error`` will be retried after ``wait`` seconds."""

    def cache_hit(self) -> None:
        """The answer came from the response cache: nothing was sent."""

    def finished(
        self,
        record: RequestRecord | None,
        answer: Mapping[str, Any] | None,
        error: BaseException | None,
    ) -> None:
        """The call ended (a stream: when it ended, was closed or cut), with its record (None
        when it failed before one could be made), the answer's JSON (a stream's assembled)
        and its error. Any call after the first is ignored."""


class Observer(Protocol):
    def batch_run(self, source: str) -> AbstractContextManager[object]:
        """A ``comet-sync batch`` run of ``source`` begins: while what this returns is entered
        (on the thread reading the results, which hands its context to the workers), the
        run's calls belong to it."""

    def call_started(
        self,
        route: str,
        payload: Mapping[str, Any],
        base_url: str,
        stream: bool,
        limiter: LimiterProtocol,
        secret: str,
    ) -> CallWatch | None:
        """A call to ``route`` with ``payload`` begins, under the client's ``limiter`` (whose
        state an observer may read, never change); its watch, or None to leave it be.
        ``secret`` is the client's key, for the observer to scrub out of what it keeps of the
        payload (a prompt may quote it), never to keep."""


# Set and cleared by set_observer; read once per call without a lock: a reference assignment
# is atomic, and a call that started just before a change finishes with the watch it got.
OBSERVER: Observer | None = None


def set_observer(observer: Observer | None) -> Observer | None:
    """Install ``observer`` (None: none) for every client; the one it replaced."""
    global OBSERVER
    previous, OBSERVER = OBSERVER, observer
    return previous
