"""Lines of a JSONL file as bytes, each read in bounded memory, and decoded one at a time.

Files are read as bytes so that one bad byte spoils one line (its job gets an error line
saying why), never the whole run: a text-mode reader raises on it from inside the loop. A line
longer than ``MAX_LINE`` is skipped to its end without being kept (a file of zeros, a device
that never sends a newline), so no input makes a run's memory grow without bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

__all__ = ["MAX_LINE", "TooLong", "decode_line", "read_lines"]

# Far above any request body an API accepts; a line past it is an error, not kept.
MAX_LINE = 64 << 20
_BOM = b"\xef\xbb\xbf"


class TooLong:
    """Stands for a line that was longer than ``MAX_LINE``: ``size`` bytes were skipped."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def read_lines(stream: IO[bytes], limit: int = MAX_LINE) -> Iterator[bytes | TooLong]:
    """Each line's bytes (with its ending), or a :class:`TooLong` in its place."""
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = stream.readline(limit)
            if not raw:
                break
            size += len(raw)
        yield TooLong(size)


def decode_line(raw: bytes, number: int) -> tuple[str | None, str | None]:
    """The text of line ``number`` and None, or None and why it cannot be read. A UTF-8 byte
    order mark opening the file is not part of its first line."""
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        return None, (
            f"line {number} is not valid UTF-8: byte 0x{bad} at position {exc.start + 1} "
            f"({exc.reason})"
        )
