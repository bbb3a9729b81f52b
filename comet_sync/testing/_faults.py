"""Scripted failures of the fake server: what a :class:`Fault` is, and the answer it gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._answers import Answer, error_answer, json_answer
from ._handler import REASONS

__all__ = ["ROTATING_FAULTS", "Fault", "fault_answer"]


@dataclass(frozen=True)
class Fault:
    """One scripted answer, used instead of the normal one for the next matching request.

    ``status`` with a JSON error body built from ``message``/``code`` (or ``body`` as given,
    a dict or raw text with ``content_type``); ``reset=True`` drops the connection without
    answering; ``delay`` sleeps first (to provoke timeouts); ``passthrough=True`` answers
    normally after the delay; ``headers`` are added; ``request_id_header=False`` leaves the
    request id only in the error message, as some CometAPI routes do. The ``stream_*`` fields
    spoil a streamed answer (which is otherwise normal).
    """

    @property
    def spoils_stream(self) -> bool:
        return (
            self.stream_cut_after is not None
            or self.stream_error_after is not None
            or self.stream_no_done
        )

    status: int = 500
    message: str | None = None
    code: str | None = None
    body: Any = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    reset: bool = False
    delay: float = 0.0
    passthrough: bool = False
    request_id_header: bool = True
    # Streams only: cut the connection after this many chunks; send an error event after
    # this many; end without data: [DONE].
    stream_cut_after: int | None = None
    stream_error_after: int | None = None
    stream_no_done: bool = False
    route: str | None = None  # only requests to this path ("/chat/completions"); None: any


ROTATING_FAULTS = (
    Fault(503, message="no available channel for this model"),
    Fault(500, message="upstream error"),
    Fault(reset=True),
)


def fault_answer(fault: Fault, rid: str) -> Answer:
    headers = dict(fault.headers)
    if fault.body is None:
        message = fault.message or REASONS.get(fault.status, "error")
        status, payload, ctype, _ = error_answer(fault.status, message, rid, code=fault.code or "")
    elif isinstance(fault.body, (dict, list)):
        status, payload, ctype, _ = json_answer(fault.status, fault.body)
    else:
        status = fault.status
        payload = str(fault.body).encode("utf-8")
        ctype = "text/html; charset=utf-8"
    return status, payload, fault.content_type or ctype, headers
