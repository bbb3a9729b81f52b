"""JSONL files for batches: input lines to jobs, results to output lines, and what an output
already holds when a run is resumed.

Two formats, both ways:

* **comet-sync's own**: an input line is a chat request body with optional ``custom_id`` and
  ``metadata``; an output line is ``custom_id``, ``metadata``, ``response`` (with
  ``request_id``) or ``error``, ``attempts``, ``latency``, ``line``.
* **OpenAI's Batch API**: an input line is ``{"custom_id", "method": "POST", "url":
  "/v1/chat/completions" | "/v1/embeddings" | "/v1/responses", "body"}`` (recognised by its
  ``body`` and
  ``url``); with ``--output-format openai`` an output line is ``{"id", "custom_id",
  "response": {"status_code", "request_id", "body"} | null, "error": {"code", "message"} |
  null}``: an HTTP error is a response with its status, anything else an error.

Every input line gets exactly one output line: a blank line gets ``"skipped"``, a line that
cannot be read an error. A line without ``custom_id`` is known by its line number (its output
line has ``"custom_id": null`` and ``"line"``), so it never collides with a user's own ids.

Memory: a job is known by a 64-bit digest of its id (or line number), so what a run keeps
per line is a small int, never the line or the id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import IO, Any, Callable

from .. import _exceptions
from .._call.retry import may_heal_later
from .._exceptions import APIStatusError, CometError, ResponseSnapshot
from .._http.error_map import error_object, openai_fields, status_error_class
from .engine import BATCH_ROUTES, CHAT_ROUTE, BatchJob, BatchResult
from .journal import discard_journal, journal_records
from .ledger import InputChanged, InputLedger, changed_lines
from .lines import MAX_LINE, TooLong, decode_line, read_lines
from .output import LineWriter

__all__ = [
    "FORMATS",
    "DigestSet",
    "ResumeState",
    "Resumed",
    "count_lines",
    "format_result",
    "prepare_resume",
    "read_jobs",
    "read_state",
    "state_path",
    "write_state",
]

FORMATS = ("comet", "openai")
# OpenAI's batch URLs, with or without the version prefix, to the routes they name.
_ROUTES = {prefix + route: route for route in BATCH_ROUTES for prefix in ("/v1", "")}
# The error classes an output line may name (its "type", or "code" in OpenAI's format), to
# rebuild the error it records and ask the retry policy about it.
_ERROR_CLASSES: dict[str, type[CometError]] = {
    name: value
    for name, value in vars(_exceptions).items()
    if isinstance(value, type) and issubclass(value, CometError)
}


class DigestSet:
    """A set of 64-bit digests in 8 bytes each (a set of ints costs about 70): a sorted array
    searched by bisection, with new digests gathered in a small set and merged in, in place,
    by the thousands. Used by one thread."""

    MERGE_AT = 1 << 14

    def __init__(self) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()

    def add(self, key: int) -> None:
        if key in self:
            return
        self._recent.add(key)
        if len(self._recent) >= self.MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        # In place, from the back, into room made at the end: the array is never copied, so
        # a million digests never need 16 MB at once.
        new = sorted(self._recent)
        self._recent = set()
        merged = self._sorted
        i, j = len(merged) - 1, len(new) - 1
        merged.extend(new)
        k = len(merged) - 1
        while j >= 0:
            if i >= 0 and merged[i] > new[j]:
                merged[k] = merged[i]
                i -= 1
            else:
                merged[k] = new[j]
                j -= 1
            k -= 1

    def __contains__(self, key: object) -> bool:
        if key in self._recent:
            return True
        if not isinstance(key, int):
            return False
        at = bisect_left(self._sorted, key)
        return at < len(self._sorted) and self._sorted[at] == key

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


def job_key(custom_id: str | None, line: int | None) -> int:
    """A job's identity, in 8 bytes: its id, or its line number when it has no id."""
    text = f"id\0{custom_id}" if custom_id is not None else f"line\0{line}"
    # surrogatepass: JSON may spell a lone surrogate ("\ud800"), which is no UTF-8; the key
    # must still be made (it crashed the run), and it stays one key for one id.
    data = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


# -- input -------------------------------------------------------------------------------------


def read_jobs(
    stream: IO[bytes],
    *,
    default_model: str | None = None,
    skip: DigestSet | None = None,
    ledger: InputLedger | None = None,
) -> Iterator[BatchJob]:
    """A job per input line, in order; a malformed line (not UTF-8, not JSON, too long...)
    becomes a job with a ``problem`` and a blank one a ``skipped`` job, so each gets its output
    line. Jobs whose key is in ``skip`` (already in a resumed output) are passed over, except
    those: a resume recomputes them, as they cost nothing. Each line is checked against
    ``ledger`` first (which raises ``InputChanged`` on a line rewritten since its result)."""
    seen = DigestSet()
    number = 0
    for number, raw in enumerate(read_lines(stream), start=1):
        job = _job_of(raw, number, default_model)
        key = job_key(job.custom_id, job.line)
        if job.custom_id is not None:
            # Before the skip: a line repeating a finished job's id is a duplicate still.
            if key in seen and job.problem is None:
                job = BatchJob(
                    custom_id=job.custom_id,
                    line=number,
                    metadata=job.metadata,
                    problem=f"line {number}: duplicate custom_id {job.custom_id!r}",
                )
            seen.add(key)
        free = job.problem is not None or job.skipped is not None
        if ledger is not None:
            ledger.check(number, raw if isinstance(raw, bytes) else b"", 0 if free else key)
        if skip is not None and not free and key in skip:
            continue
        yield job
    if ledger is not None:
        ledger.check_end(number)


def _job_of(raw: bytes | TooLong, number: int, default_model: str | None) -> BatchJob:
    if isinstance(raw, TooLong):
        return BatchJob(
            custom_id=None,
            line=number,
            problem=f"line {number} is {raw.size} bytes long, over the {MAX_LINE >> 20} MiB "
            "a line may have",
        )
    text, problem = decode_line(raw, number)
    if text is None:
        return BatchJob(custom_id=None, line=number, problem=problem)
    if not text.strip():
        return BatchJob(custom_id=None, line=number, skipped="blank line")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return BatchJob(
            custom_id=None, line=number, problem=f"line {number} is not JSON: {exc.msg}"
        )
    except ValueError as exc:  # (bad UTF-8 surrogates and the like)
        return BatchJob(custom_id=None, line=number, problem=f"line {number} is not JSON: {exc}")
    except RecursionError:
        # Valid JSON nested deeper than Python's parser goes (100,000 brackets crashed a run).
        return BatchJob(
            custom_id=None, line=number, problem=f"line {number} is JSON nested too deep to read"
        )
    if not isinstance(raw, dict):
        return BatchJob(custom_id=None, line=number, problem=f"line {number} is not a JSON object")
    given = raw.get("custom_id")
    cid = str(given) if given is not None else None
    metadata = raw.get("metadata")
    route = CHAT_ROUTE
    if "body" in raw and ("url" in raw or "method" in raw):  # OpenAI's batch input format
        body = raw["body"]
        route_or_none = _ROUTES.get(str(raw.get("url")))
        problem = None
        if str(raw.get("method", "POST")).upper() != "POST":
            problem = f"line {number}: method {raw.get('method')!r} is not POST"
        elif route_or_none is None:
            urls = ", ".join("/v1" + route for route in BATCH_ROUTES)
            problem = f"line {number}: url {raw.get('url')!r} is not one of {urls}"
        elif not isinstance(body, dict):
            problem = f"line {number}: body is not a JSON object"
        if problem is not None or route_or_none is None:
            return BatchJob(
                custom_id=cid,
                line=number,
                metadata=metadata,
                problem=problem or f"line {number}: no route",
            )
        route = route_or_none
        body = dict(body)
    else:
        body = {k: v for k, v in raw.items() if k not in ("custom_id", "metadata")}
    if default_model is not None and "model" not in body:
        body["model"] = default_model
    problem = _body_problem(body, route, number)
    return BatchJob(
        custom_id=cid, body=body, metadata=metadata, line=number, route=route, problem=problem
    )


def _body_problem(body: dict[str, Any], route: str, number: int) -> str | None:
    if route == CHAT_ROUTE:
        messages = body.get("messages")
        if messages is None:
            return f"line {number}: no messages"
        if not isinstance(messages, list):
            return (
                f"line {number}: messages must be a list of message objects, got "
                f"{type(messages).__name__}"
            )
        if not messages:
            return f"line {number}: messages is empty"
    elif body.get("input") in (None, "", []):
        return f"line {number}: no input"
    if not isinstance(body.get("model"), str):
        return f"line {number}: no model (give one in the line or with --model)"
    return None


def count_lines(path: str) -> int | None:
    """Lines of a regular file, for the progress total (read in blocks, nothing kept); None
    for a pipe or stdin, which can be read only once."""
    if path == "-" or not os.path.isfile(path):
        return None
    count = 0
    with open(path, "rb") as f:
        for _ in f:
            count += 1
    return count


# -- output ------------------------------------------------------------------------------------


def format_result(result: BatchResult, output_format: str) -> dict[str, Any]:
    """One output line for ``result`` in ``output_format`` ("comet" or "openai")."""
    if output_format != "openai":
        return result.to_json()
    out: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": result.custom_id}
    error = result.error
    if result.skipped is not None:
        out["response"] = None
        out["error"] = {"code": "skipped", "message": result.skipped}
    elif error is None:
        out["response"] = {
            "status_code": result.status_code or 200,
            "request_id": result.request_id,
            "body": result.response,
        }
        out["error"] = None
    elif error.get("status") is not None:
        # The server answered: OpenAI reports that as a response with its status.
        body = error.get("body")
        out["response"] = {
            "status_code": error["status"],
            "request_id": error.get("request_id"),
            "body": body if body is not None else {"error": {"message": error.get("message")}},
        }
        out["error"] = None
    else:
        out["response"] = None
        out["error"] = {"code": error.get("type"), "message": error.get("message")}
    if result.custom_id is None and result.line is not None:
        out["line"] = result.line
    return out


# -- resuming ------------------------------------------------------------------------------------


@dataclass
class Resumed:
    """What an existing output holds: the keys of its jobs (those its journal holds
    included), the error lines taken out to be sent again, the error lines left in it (of
    which ``retryable`` may heal), and the results of a run that did not end found in its
    journal: ``early`` (line number, output line), still to be written, in input order."""

    keys: DigestSet = field(default_factory=DigestSet)
    removed: int = 0
    errors: int = 0
    retryable: int = 0
    from_journal: int = 0
    early: list[tuple[int, str]] = field(default_factory=list)


def prepare_resume(
    path: str,
    *,
    retry_errors: bool,
    input_path: str | None = None,
    defer_journal: bool = False,
) -> Resumed:
    """Read an existing output for a resumed run, after cutting off a trailing partial line
    (what a kill in the middle of a write leaves), with the results its journal holds (what a
    crash left waiting for their turn in input order): appended to the output now, or with
    ``defer_journal`` handed back in ``early``, to be written in their turn.

    Lines of malformed and blank input lines are taken out, to be made again from the input as
    it is now (it costs nothing); with ``retry_errors``, so are error lines of kinds that may
    heal; and, when ``input_path`` is a file, error lines of input lines changed since (fixed).
    The rerun's line replaces each: one line per input line still. Raises ``InputChanged``,
    before anything is sent, if an input line with an answer in the output has changed."""
    found = Resumed()
    if not os.path.exists(path):
        discard_journal(path)  # left by some other run: nothing of it is ours
        return found
    _truncate_partial_line(path)
    early = _journal_lacking(path)
    if early and not defer_journal:
        _append(path, [text for _, text, _ in early])
        found.from_journal = len(early)
        early = []
    fixed = _fixed_lines(path, input_path, [record for _, _, record in early])

    def drop(record: dict[str, Any]) -> bool:
        return (
            _from_input_alone(record)
            or (retry_errors and is_retryable_error(record))
            or (fixed is not None and _key_of(record) in fixed)
        )

    found.removed = _drop_lines(path, drop)
    kept = [(line, text, record) for line, text, record in early if not drop(record)]
    found.removed += len(early) - len(kept)
    if not kept:
        discard_journal(path)  # (after the output has all it needs from it)
    with open(path, "rb") as f:
        # Streamed: an output of a million lines is never in memory at once.
        for record in chain((_record(raw) for raw in f), (r for _, _, r in kept)):
            if record is None:
                continue
            found.keys.add(_key_of(record))
            if _is_error(record):
                found.errors += 1
                found.retryable += is_retryable_error(record)
    found.early = [(line, text) for line, text, _ in kept]
    found.from_journal += len(kept)
    return found


def _fixed_lines(
    path: str, input_path: str | None, journaled: list[dict[str, Any]]
) -> DigestSet | None:
    """The keys of the error lines whose input line has changed since; raises if an answered
    line has. None when there is nothing to compare (a pipe, or no line changed)."""
    if input_path is None or input_path == "-" or not os.path.isfile(input_path):
        return None
    with open(input_path, "rb") as f:
        changed = list(_first_changes(path, f))
    if not changed:
        return None
    answered, failed = DigestSet(), DigestSet()
    with open(path, "rb") as f:
        for record in chain((_record(raw) for raw in f), journaled):
            if record is not None:
                (failed if _is_error(record) else answered).add(_key_of(record))
    fixed = DigestSet()
    for number, old_key, present in changed:
        if old_key in answered:
            what = "has changed" if present else "is gone"
            raise InputChanged(
                f"line {number} of the input {what} since its answer was written: the input "
                "was rewritten or replaced after this run began"
            )
        if old_key in failed:
            fixed.add(old_key)
    return fixed


# Changed lines looked at before a resume; past it, the input is taken as rewritten and the
# rest is left to the check made as each line is read.
_MAX_CHANGES = 100_000


def _first_changes(path: str, stream: IO[bytes]) -> Iterator[tuple[int, int, bool]]:
    for count, change in enumerate(changed_lines(path, stream)):
        if count >= _MAX_CHANGES:
            return
        yield change


def _key_of(record: dict[str, Any]) -> int:
    return job_key(_id_of(record), record.get("line"))


def _journal_lacking(path: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The journal's results that the output does not hold, in input order."""
    records = journal_records(path)
    if not records:
        return []
    held = DigestSet()
    with open(path, "rb") as f:
        for raw in f:
            record = _record(raw)
            if record is not None:
                held.add(_key_of(record))
    return [item for item in records if _key_of(item[2]) not in held]


def _append(path: str, texts: list[str]) -> None:
    writer = LineWriter(path)
    try:
        for text in texts:
            writer.write_line(text)
    finally:
        writer.close()
    # Only now: a crash before this line leaves the journal, and the next resume skips what
    # was already placed.
    discard_journal(path)


def _from_input_alone(record: dict[str, Any]) -> bool:
    """A line made without a request (a malformed or blank input line): free to recompute."""
    if record.get("skipped") is not None:
        return True
    error = record.get("error")
    if not isinstance(error, dict):
        return False
    # (comet's format names the kind "type"; OpenAI's "code", and has no "skipped" key.)
    return (
        "InvalidInput" in (error.get("type"), error.get("code")) or error.get("code") == "skipped"
    )


def _is_error(record: dict[str, Any]) -> bool:
    if record.get("error") is not None:
        return True
    response = record.get("response")
    return isinstance(response, dict) and (response.get("status_code") or 200) >= 300


def _record(text: str | bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _id_of(record: dict[str, Any]) -> str | None:
    cid = record.get("custom_id")
    return str(cid) if cid is not None else None


def is_retryable_error(record: dict[str, Any]) -> bool:
    """Whether an output line (either format) is an error that sending again may heal: the
    retry policy's word (``may_heal_later``) on the error the line records."""
    exc = error_of_record(record)
    return exc is not None and may_heal_later(exc)


def error_of_record(record: dict[str, Any]) -> CometError | None:
    """The error an output line records, rebuilt as far as the line tells (its class, status,
    error code and message: what the retry policy reads); None for a line that is no error
    or names no error of ours."""
    response = record.get("response")
    error = record.get("error")
    if isinstance(response, dict):  # OpenAI's format: an HTTP error is a response
        status = response.get("status_code")
        if isinstance(status, int) and status >= 300:
            return _status_error(status, response.get("body"), None)
    if not isinstance(error, dict):
        return None
    status = error.get("status")
    if isinstance(status, int):  # comet's format: the status, the message, the body
        return _status_error(status, error.get("body"), error.get("message"))
    cls = _ERROR_CLASSES.get(str(error.get("type") or error.get("code")))
    if cls is None or issubclass(cls, APIStatusError):
        return None  # (an answer's error without its status: no line we write)
    # Built as unpickling builds it (no constructor: each wants its own arguments): what the
    # policy asks of an error that is no answer is its class.
    exc = cls.__new__(cls)
    exc.args = (str(error.get("message") or ""),)
    return exc


def _status_error(status: int, document: Any, message: Any) -> APIStatusError:
    code, _, _ = openai_fields(error_object(document))
    if not isinstance(message, str):
        body = error_object(document)
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
    snapshot = ResponseSnapshot(status_code=status, reason="", headers={}, url="", text="")
    return status_error_class(status)(
        message, response=snapshot, status_code=status, code=code, document=document
    )


def _drop_lines(path: str, drop: Callable[[dict[str, Any]], bool]) -> int:
    removed = 0
    folder = os.path.dirname(os.path.abspath(path))
    with (
        open(path, "rb") as src,
        tempfile.NamedTemporaryFile("wb", dir=folder, delete=False) as dst,
    ):
        for raw in src:
            record = _record(raw)
            if record is not None and drop(record):
                removed += 1
                continue
            dst.write(raw)
    if removed:
        os.replace(dst.name, path)  # atomic: a crash leaves the old file or the new one
    else:
        os.unlink(dst.name)
    return removed


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


# -- the run's options, kept next to its output ---------------------------------------------------

ResumeState = dict[str, Any]


def state_path(output: str) -> str:
    return output + ".state.json"


def write_state(output: str, state: ResumeState) -> None:
    """Record the run's input and options beside its output, so ``--resume`` alone reuses
    them. Written atomically."""
    path = state_path(output)
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, delete=False) as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(f.name, path)


def read_state(output: str) -> ResumeState:
    try:
        with open(state_path(output), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}
