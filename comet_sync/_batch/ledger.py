"""What each input line was when a run read it, so a resume cannot mix two inputs.

``OUTPUT.input`` holds 16 bytes per input line read: an 8-byte digest of the line's bytes and
the 8-byte key of its job. A resume checks every line it reads against it, before deciding
whether the line is done:

* the same bytes: nothing to say;
* other bytes, and the job the line used to be has a result in the output: the input was
  rewritten or replaced since that result was written — refused, before the line is sent;
* other bytes, and the old job has no result (it was never finished, or it was a malformed
  line, whose error lines a resume recomputes): the new line is simply the job now. That is
  how fixing a bad line and resuming works.

Checked line by line rather than as one hash of the file, so that fixing a malformed line is
not taken for a new input, and so that a pipe (read once) is checked as well as a file. The
ledger is written before the line's job can finish, so a result on disk always has its line
in the ledger.

A file input is also compared with the ledger as a whole before a resume sends anything
(:func:`changed_lines`): a changed line whose old job ended in an error is then a fixed line,
its error line taken out to be made again; one whose old job has an answer refuses the resume
before a single request. The check while reading stays for a pipe, which cannot be read twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Container, Iterator
from typing import IO

from .lines import read_lines
from .output import OutputFailed, open_side_file

__all__ = ["InputChanged", "InputLedger", "changed_lines", "ledger_path"]

_RECORD = 16


class InputChanged(Exception):
    """The input is not the one the output's results answer."""


def ledger_path(output: str) -> str:
    return output + ".input"


def line_digest(raw: bytes) -> bytes:
    # Without its line ending: appending after a last line that had none changes nothing.
    return hashlib.blake2b(raw.rstrip(b"\r\n"), digest_size=8).digest()


class InputLedger:
    """The ledger of one run. ``finished`` holds the keys of the jobs the output has results
    for. Used by the thread reading the input."""

    def __init__(self, output: str, *, fresh: bool, finished: Container[int]) -> None:
        self.path = ledger_path(output)
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0)
        # Unbuffered: each record is in the OS's hands (and survives a kill) at once.
        self._file = open(open_side_file(self.path, flags), "r+b", buffering=0)  # noqa: SIM115
        self._known = os.fstat(self._file.fileno()).st_size // _RECORD
        self._at = 0  # the file's position
        self._finished = finished

    def check(self, number: int, raw: bytes, key: int) -> None:
        """Record line ``number`` (1-based) with job ``key``; raise :class:`InputChanged` if
        it differs from the line a finished result was made from."""
        digest = line_digest(raw)
        offset = (number - 1) * _RECORD
        if number <= self._known:
            self._seek(offset)
            old = self._file.read(_RECORD)
            self._at += len(old)
            if old[:8] == digest:
                return
            if int.from_bytes(old[8:], "big") in self._finished:
                raise InputChanged(
                    f"line {number} of the input has changed since its result was written: "
                    "the input was rewritten or replaced after this run began"
                )
        try:
            self._seek(offset)
            self._file.write(digest + key.to_bytes(8, "big"))
        except OSError as exc:
            # A full disk, a file-size limit: the run stops as for its output (exit 3), with
            # every finished result kept; not a traceback that drops them.
            raise OutputFailed(self.path, exc) from None
        self._at += _RECORD
        self._known = max(self._known, number)

    def _seek(self, offset: int) -> None:
        # Lines come in order: mostly the file is already there, and a seek is a system call.
        if self._at != offset:
            self._file.seek(offset)
            self._at = offset

    def check_end(self, lines: int) -> None:
        """At the end of the input: raise if it lost lines whose results are in the output."""
        self._seek(lines * _RECORD)
        while True:
            old = self._file.read(_RECORD)
            self._at += len(old)
            if len(old) < _RECORD:
                return
            if int.from_bytes(old[8:], "big") in self._finished:
                raise InputChanged(
                    f"the input has {lines} line(s) now, fewer than when this run began, and "
                    "the output holds results of lines no longer there"
                )

    def close(self) -> None:
        self._file.close()


def changed_lines(output: str, stream: IO[bytes]) -> Iterator[tuple[int, int, bool]]:
    """``(line number, key of the job it was, whether the line is still there)`` for each line
    the ledger of ``output`` holds that differs in ``stream`` now, or that ``stream`` no longer
    has."""
    try:
        ledger = open(ledger_path(output), "rb")  # noqa: SIM115  (closed below)
    except FileNotFoundError:
        return  # a run from before the ledger: nothing to compare with
    with ledger:
        number = 0
        for number, raw in enumerate(read_lines(stream), start=1):
            old = ledger.read(_RECORD)
            if len(old) < _RECORD:
                return  # lines past what was ever read: new jobs
            if old[:8] != line_digest(raw if isinstance(raw, bytes) else b""):
                yield number, int.from_bytes(old[8:], "big"), True
        while True:
            old = ledger.read(_RECORD)
            if len(old) < _RECORD:
                return
            number += 1
            yield number, int.from_bytes(old[8:], "big"), False
