"""One writer per batch output: an OS lock on ``OUTPUT.lock``, held for the whole run.

The lock is on a file of its own, not on the output: a resume replaces the output (atomically,
by rename) to take lines out of it, and a lock on the old file would not bar a writer that
opens the new one. It is taken before anything looks at the output, so two fresh runs racing
the "already exists" check cannot both pass it.

POSIX only (``fcntl.flock``): the lock dies with its process, so a killed run never leaves a
stale one. Where there is no ``fcntl`` (Windows), runs are not guarded against each other: the
lock is a no-op there rather than a refusal of every run.
"""

from __future__ import annotations

import contextlib
import os
from types import TracebackType

from .output import open_side_file

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows)
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputLock", "OutputLocked", "lock_path"]


class OutputLocked(Exception):
    """Another process holds the output's lock."""

    def __init__(self, output: str, holder: str) -> None:
        who = f" (pid {holder})" if holder else ""
        super().__init__(
            f"another comet-sync batch{who} is writing {output}; wait for it to end, or stop it"
        )


def lock_path(output: str) -> str:
    return output + ".lock"


class OutputLock:
    """``with OutputLock(output):`` — raises :class:`OutputLocked` at once if held elsewhere;
    the lock file is removed when released."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.path = lock_path(output)
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        while True:
            fd = open_side_file(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                raise OutputLocked(self.output, holder) from None
            # The holder before us removes the file as it lets go: a lock won on a file no
            # longer at the path guards nothing, so take the one that is there now.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Removed while still held, so no one can lock it between the two steps.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None
