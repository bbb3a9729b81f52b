"""Results that finished before their turn in an ordered output, kept on disk until it comes.

In input order, a slow line holds back every result behind it, up to the reordering window
(a thousand and more, all paid for). Each of them is written to ``OUTPUT.journal`` as it
finishes, and to the output when its turn comes; once everything in the journal has reached
the output, the journal is emptied. A crash therefore loses only the calls in flight. An
ordered resume takes the journal's results the output lacks as already held, each written in
its turn (so the output ends in input order, as if nothing had happened); an unordered one
appends them at once.

A journal line is ``LINE<tab>TEXT``: the input line number (an output line in OpenAI's format
does not say it) and the output line, exactly (that format's ids are random).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
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

    def __init__(self, output: str, preload: Iterable[tuple[int, str]] = ()) -> None:
        """``preload``: results the journal already holds, from a run that did not end (in
        input order): they are written out by :meth:`due`, each in its turn."""
        self.path = journal_path(output)
        self._writer: LineWriter | None = None
        self._held: dict[int, str] = dict(preload)
        self._due: deque[int] = deque(sorted(self._held))
        # Lines in the file since it was last emptied or rewritten.
        self._lines = len(self._held)
        if self._held:
            self._writer = LineWriter(self.path)

    def hold(self, line: int, text: str) -> None:
        """Write an early result's output line; raises ``OutputFailed`` as the output does."""
        if self._writer is None:
            self._writer = LineWriter(self.path)
        self._writer.write_line(f"{line}\t{text}")
        self._held[line] = text
        self._lines += 1

    def due(self, before: int | None) -> Iterator[tuple[int, str]]:
        """The preloaded results whose turn comes before input line ``before`` (all of them
        for None), in order: write each, then :meth:`take` it (a failed write leaves it held,
        and the journal kept)."""
        while self._due and (before is None or self._due[0] < before):
            line = self._due.popleft()
            text = self._held.get(line)
            if text is not None:
                yield line, text

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
                for line, text in self._held.items():
                    f.write(f"{line}\t{text}\n")
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


def journal_records(output: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The journal's whole lines (a crash may have torn the last one): input line number,
    output line, and that line's record. Small: a reordering window or so."""
    path = journal_path(output)
    out: list[tuple[int, str, dict[str, Any]]] = []
    try:
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn by a crash: its result is sent again
                try:
                    number, _, text = raw[:-1].decode("utf-8").partition("\t")
                    line = int(number)
                    record = json.loads(text)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append((line, text, record))
    except FileNotFoundError:
        pass
    return sorted(out, key=lambda item: item[0])
