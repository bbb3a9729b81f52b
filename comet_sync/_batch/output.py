"""Whole lines or nothing: the file writer under a batch's output and its journal.

Each line goes to the OS in one unbuffered write, so what a crash leaves is whole lines (a
resume cuts a torn last one). A write that fails part way — a full disk, a quota — is undone
by cutting the file back to where the line began: no buffer is left holding half a line to
be flushed later, and the file stays whole lines. After a failure the writer is broken for
good and says why; the run stops rather than skip lines.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["BINARY", "LineWriter", "OutputFailed", "open_side_file"]

# Windows opens a descriptor in text mode unless told, and would write "\r\n" for "\n".
BINARY = getattr(os, "O_BINARY", 0)
# The files a batch writes are never opened through a link: in a shared folder, anyone could
# point OUTPUT.input or OUTPUT.lock at a file of the user running the batch, which would be
# truncated and overwritten. (Windows has no O_NOFOLLOW; links there need privileges.)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_side_file(path: str, flags: int, mode: int = 0o644) -> int:
    """``os.open`` for a file a batch writes, refusing a symbolic link at ``path``."""
    try:
        return os.open(path, flags | BINARY | NOFOLLOW, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise OSError(
                exc.errno, f"{path} is a symbolic link, which a batch never writes through", path
            ) from None
        raise


class OutputFailed(Exception):
    """A line could not be written (the file holds only whole lines still)."""

    def __init__(self, path: str, error: OSError) -> None:
        self.path = path
        self.error = error
        reason = error.strerror or str(error)
        super().__init__(f"cannot write {path}: {reason}")


class LineWriter:
    """Appends whole lines to ``path`` (created if missing). Used by one thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = open_side_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._size = os.fstat(self._fd).st_size
        self.failure: OutputFailed | None = None

    def write_line(self, text: str) -> None:
        """Write ``text`` and a newline, whole, or raise :class:`OutputFailed`."""
        if self.failure is not None:
            raise self.failure
        data = (text + "\n").encode("utf-8")
        try:
            self._write_all(data)
        except OSError as exc:
            self.failure = OutputFailed(self.path, exc)
            self._cut_back()
            raise self.failure from None
        except BaseException:
            # A second Ctrl-C lands wherever the main thread is, in this write too; the run
            # then saves what finished, which must not be glued to half a line.
            if os.fstat(self._fd).st_size == self._size + len(data):
                self._size += len(data)  # it had all gone out: a whole line, kept
            else:
                self._cut_back()
            raise
        self._size += len(data)

    def truncate(self) -> None:
        """Empty the file (the journal, once everything in it is in the output)."""
        if self.failure is None:
            os.ftruncate(self._fd, 0)
            self._size = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _cut_back(self) -> None:
        # Shrinking a file needs no free space: this works on a full disk too. If it fails
        # all the same, a resume cuts the torn last line.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)
