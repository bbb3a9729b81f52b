"""Server-sent events, parsed as the HTML spec says, from raw bytes as they arrive.

Lines may end in CRLF, LF or CR and may be split anywhere across network reads (a CRLF too);
an event is the ``data:`` lines before a blank line, joined with newlines; lines starting with
``:`` are comments (keep-alives); other fields (``event:``, ``id:``, ``retry:``) are kept on
the event but CometAPI does not use them. Text is UTF-8 with invalid bytes replaced by U+FFFD,
as the spec tells browsers to do.

Buffering is linear in the bytes received: the buffer only grows at its end and is scanned
only where it has not been yet, so a 20 MB event arriving in 4 KiB pieces costs 20 MB of work,
not 50 GB. An event (or a line) larger than ``max_event_bytes`` raises
:class:`EventTooLargeError` instead of growing without end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["Event", "EventTooLargeError", "iter_events"]


class EventTooLargeError(Exception):
    """An event grew past its cap; the caller turns it into an API error naming the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a stream event is larger than max_event_bytes={limit}")
        self.limit = limit


class Event:
    """One server-sent event: its ``data`` (lines joined) and its ``event`` type."""

    __slots__ = ("data", "event")

    def __init__(self, data: str, event: str = "message") -> None:
        self.data: str = data
        self.event: str = event

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.data == other.data and self.event == other.event

    __hash__: None = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Event(data={self.data!r}, event={self.event!r})"


def iter_events(chunks: Iterable[bytes], *, max_event_bytes: int | None = None) -> Iterator[Event]:
    """Events from a byte stream; a trailing event without its blank line is not dispatched."""
    data: list[str] = []
    size = 0
    event = ""
    for line in _iter_lines(chunks, max_event_bytes):
        if not line:
            if data:
                yield Event(data[0] if len(data) == 1 else "\n".join(data), event or "message")
            data, event, size = [], "", 0
            continue
        if line.startswith("data: "):  # the common case, without the general parse below
            value = line[6:]
            data.append(value)
            size += len(value) + 1
            if max_event_bytes is not None and size > max_event_bytes:
                raise EventTooLargeError(max_event_bytes)
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
            size += len(value) + 1
            if max_event_bytes is not None and size > max_event_bytes:
                raise EventTooLargeError(max_event_bytes)
        elif name == "event":
            event = value


def _iter_lines(chunks: Iterable[bytes], limit: int | None) -> Iterator[str]:
    buffer = bytearray()
    scanned = 0  # buffer[:scanned] holds no line end not yet handled
    for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        start = 0
        # Where the next CR is, looked for once per piece and again only past it: servers end
        # lines with LF, and scanning the rest of a 64 KiB piece for a CR at every line made
        # a piece of many short events cost its size times its lines.
        cr = buffer.find(b"\r", scanned)
        while True:
            lf = buffer.find(b"\n", scanned, cr if cr != -1 else len(buffer))
            if cr == -1 and lf == -1:
                scanned = len(buffer)
                break
            if lf == -1:  # a CR first
                if cr == len(buffer) - 1:
                    scanned = cr  # a CR at the end may be the first half of a CRLF: wait
                    break
                end, nxt = cr, cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
            else:
                end, nxt = lf, lf + 1
            yield buffer[start:end].decode("utf-8", "replace") if end > start else ""
            start = scanned = nxt
            if cr != -1 and cr < nxt:
                cr = buffer.find(b"\r", nxt)
        if start:
            del buffer[:start]
            scanned -= start
        if limit is not None and len(buffer) > limit:
            raise EventTooLargeError(limit)
    # The stream ended mid-line: a lone CR finishes a line; anything else is incomplete.
    if buffer.endswith(b"\r"):
        yield buffer[:-1].decode("utf-8", "replace")
