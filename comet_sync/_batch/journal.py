"""Results that finished before their turn in an ordered output, kept on disk until it comes.

In input order, a slow line holds back every result behind it, up to the reordering window
(a thousand and more, all paid for). Each of them is written to ``OUTPUT.journal`` as it
finishes, and to the output when its turn comes; once everything in the journal has reached
the output, the journal is emptied. A crash therefore loses only the calls in flight: a resume
first appends to the output the journal's results it does not hold yet (out of input order,
as after a Ctrl-C), then removes the journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

from .output import LineWriter

__all__ = ["Journal", "discard_journal", "journal_path", "journal_records"]

# When the output keeps lagging (something is always ahead of a slow line), the journal never
# empties: past this many lines, mostly already in the output, it is rewritten with the rest.
COMPACT_AT = 4096


def journal_path(output: str) -> str:
    return output + ".journal"


class Journal:
    """The journal of one run, keyed by input line number. Used by the writing thread."""

    def __init__(self, output: str) -> None:
        self.path = journal_path(output)
        self._writer: LineWriter | None = None
        self._held: dict[int, str] = {}
        self._lines = 0  # written since the journal was last emptied or rewritten

    def hold(self, line: int, text: str) -> None:
        """Write an early result's output line; raises ``OutputFailed`` as the output does."""
        if self._writer is None:
            self._writer = LineWriter(self.path)
        self._writer.write_line(text)
        self._held[line] = text
        self._lines += 1

    def take(self, line: int) -> str | None:
        """The line held for input line ``line``, if any (its output line must be this text:
        the openai format's ids are random)."""
        return self._held.pop(line, None)

    def settle(self) -> None:
        """Call after writing to the output: empties the journal once it holds nothing the
        output lacks, so it never grows much past the reordering window."""
        if self._writer is None or not self._lines:
            return
        if not self._held:
            self._writer.truncate()
            self._lines = 0
        elif self._lines > COMPACT_AT and self._lines > 4 * len(self._held):
            self._compact()

    def _compact(self) -> None:
        if self._writer is None:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        name = ""
        try:
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=folder, delete=False, newline="\n"
            ) as f:
                name = f.name
                for text in self._held.values():
                    f.write(text + "\n")
        except OSError:
            # No room for the copy: the journal stays as it is, whole and larger.
            if name:
                with contextlib.suppress(OSError):
                    os.unlink(name)
            return
        # Atomic: a crash leaves the old journal (a superset) or the new one.
        os.replace(name, self.path)
        self._writer.close()
        self._writer = LineWriter(self.path)
        self._lines = len(self._held)

    def close(self) -> None:
        """Remove the journal if everything in it reached the output (kept otherwise: a
        resume places it)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._held:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def discard_journal(output: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(output))


def journal_records(output: str) -> list[tuple[str, dict[str, Any]]]:
    """The journal's whole lines (a crash may have torn the last one) with their records.
    Small: at most a reordering window of lines per interrupted run."""
    path = journal_path(output)
    out: list[tuple[str, dict[str, Any]]] = []
    try:
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn by a crash: its result is sent again
                try:
                    text = raw[:-1].decode("utf-8")
                    record = json.loads(text)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append((text, record))
    except FileNotFoundError:
        pass
    return out
