"""JSONL files for batches: reading jobs from input lines, and what an output already holds.

Both files are streamed: the input is read a line at a time, and a resumed output is scanned
once for the ids it holds. What stays in memory is the set of ids (to skip finished ones and
to catch duplicates), never the lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, Any

from ._batch import BatchJob

__all__ = ["count_lines", "done_ids", "read_jobs"]


def read_jobs(
    stream: IO[str],
    *,
    default_model: str | None = None,
    skip: set[str] | None = None,
) -> Iterator[BatchJob]:
    """A job per non-blank input line, in order; a malformed line becomes a job with a
    ``problem`` (its line number is kept), so it gets an error line of its own. Ids in
    ``skip`` (already in a resumed output) are passed over."""
    seen: set[str] = set()
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raw, problem = None, f"line {number} is not JSON: {exc.msg}"
        else:
            problem = None if isinstance(raw, dict) else f"line {number} is not a JSON object"
        if problem is not None:
            # A line we cannot read has no id of its own: it is known by its line number.
            if skip is None or str(number) not in skip:
                yield BatchJob(custom_id=str(number), line=number, problem=problem)
            continue
        assert isinstance(raw, dict)
        custom_id = raw.get("custom_id")
        cid = str(custom_id) if custom_id is not None else str(number)
        if skip is not None and cid in skip:
            continue
        body = {k: v for k, v in raw.items() if k not in ("custom_id", "metadata")}
        if default_model is not None and "model" not in body:
            body["model"] = default_model
        problem = None
        if cid in seen:
            problem = f"line {number}: duplicate custom_id {cid!r}"
        elif not isinstance(body.get("messages"), list) or not body["messages"]:
            problem = f"line {number}: no messages"
        elif not isinstance(body.get("model"), str):
            problem = f"line {number}: no model (give one in the line or with --model)"
        seen.add(cid)
        yield BatchJob(custom_id=cid, body=body, metadata=raw.get("metadata"), line=number,
                       problem=problem)


def done_ids(path: str) -> set[str]:
    """The ids an existing output file holds, after cutting off a trailing partial line (what
    a kill in the middle of a write leaves); an absent file holds none."""
    if not os.path.exists(path):
        return set()
    _truncate_partial_line(path)
    ids: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record: Any = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("custom_id") is not None:
                ids.add(str(record["custom_id"]))
    return ids


def _truncate_partial_line(path: str) -> None:
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Walk back to the last newline; everything after it is a torn write.
        block = 4096
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i != -1:
                f.truncate(start + i + 1)
                return
            end = start
        f.truncate(0)


def count_lines(path: str) -> int:
    """Non-blank lines, for the progress total (read in blocks, nothing kept)."""
    count = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                count += 1
    return count
