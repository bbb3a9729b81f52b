"""Server-sent events, parsed as the HTML spec says, from raw bytes as they arrive.

Lines may end in CRLF, LF or CR and may be split anywhere across network reads (a CRLF too);
an event is the ``data:`` lines before a blank line, joined with newlines; lines starting with
``:`` are comments (keep-alives); other fields (``event:``, ``id:``, ``retry:``) are kept on
the event but CometAPI does not use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Event", "iter_events"]


@dataclass(frozen=True)
class Event:
    data: str
    event: str = "message"


def iter_events(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Events from a byte stream; a trailing event without its blank line is not dispatched."""
    data: list[str] = []
    event = ""
    for line in _iter_lines(chunks):
        if not line:
            if data:
                yield Event(data="\n".join(data), event=event or "message")
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value


def _iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    buffer = b""
    for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        start = 0
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                if cr == len(buffer) - 1:
                    break  # a CR at the end may be the first half of a CRLF: wait for more
                end, nxt = cr, cr + 2 if buffer[cr + 1:cr + 2] == b"\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            yield buffer[start:end].decode("utf-8", "replace")
            start = nxt
        buffer = buffer[start:]
    # The stream ended mid-line: a lone CR finishes a line; anything else is incomplete.
    if buffer.endswith(b"\r"):
        yield buffer[:-1].decode("utf-8", "replace")
