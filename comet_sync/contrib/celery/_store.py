"""A batch run's state on Redis: what the coordinator and the chunk tasks of the workers share.

Keys, under ``<namespace>:batch:<run id>`` (the namespace is the shared limiter's,
``comet_sync:<app name>`` unless set), each with a TTL renewed on every write:

* ``:results`` — a hash, input line number -> ``{"d": digest of the job, "r": the result}``.
  Written once per line (HSETNX): the first result recorded for a line is its result. Once the
  coordinator has written a line to the output, its result is replaced by a small mark
  (``WRITTEN``): still recorded, so a chunk delivered again does not send the line, but no
  longer holding the answer, so a long batch does not keep every answer in Redis. The keys of
  a run that ended with every line written are deleted.
* ``:events`` — a list the coordinator blocks on: ``r<line>`` (a result was recorded),
  ``s<chunk>`` / ``e<chunk>[<tab>error]`` (a chunk task started / ended), ``m<epoch>`` (the
  coordinator's own stop marker).
* ``:running`` — a sorted set of the chunks running now, each with the end of its lease
  (renewed while it runs, so a killed worker's entry lapses by itself): a resumed coordinator
  waits for its predecessor's chunks to finish the calls on their wire before it sends, so
  it never sends a line one of them is still answering.
* ``:epoch`` — the live session's number. Each coordinator session takes a new one (INCR) and a
  stop moves it on again, so a chunk task of any other session sends nothing more: stopping
  the workers is one write, and a resumed coordinator silences everything its predecessor
  left queued.

The result of a line is recorded and announced in one script, so no result is recorded
without its event, nor announced twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..._batch.engine import BatchJob, BatchResult

__all__ = ["DEFAULT_TTL", "RunStore", "Stored", "job_digest", "job_of", "job_payload"]

# How long a run's keys live after their last write: long enough for a coordinator stopped on
# Friday to be resumed on Monday and find what the workers finished meanwhile.
DEFAULT_TTL = 7 * 24 * 3600.0
# Events taken per round trip once one has arrived.
EVENT_BATCH = 1000
# What a written line's result becomes.
WRITTEN = "w"
# A running chunk's entry lapses this long after its last renewal (a killed worker's does).
RUNNING_LEASE = 3.0

# Redis's clock, in milliseconds, for the leases: every process reads the same one.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_RECORD = """
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if added == 1 then
  redis.call('RPUSH', KEYS[2], 'r' .. ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return added
"""

# A chunk starts only in the live session: the check and the announcement in one step, so a
# coordinator that stops (moves the epoch, then pushes its marker) sees every start that
# could still send before its marker. A chunk that may not start says it ended at once: a
# stopped coordinator waiting for it (delivered again after its worker died) hears of it.
_START = (
    _NOW
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('RPUSH', KEYS[2], 'e' .. ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 0
end
redis.call('RPUSH', KEYS[2], 's' .. ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""
)

# A running chunk renews its lease and reads the live epoch, in one round trip.
_BEAT = (
    _NOW
    + """
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return redis.call('GET', KEYS[1])
"""
)

# The chunks running now (lapsed leases dropped first).
_RUNNING = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)

_STOP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('INCR', KEYS[1])
end
redis.call('RPUSH', KEYS[2], 'm' .. ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""


@dataclasses.dataclass(frozen=True)
class Stored:
    """A line's recorded result, with the digest of the job it answers."""

    digest: str
    result: BatchResult


def job_payload(job: BatchJob) -> dict[str, Any]:
    """What a chunk carries for one line (JSON: Celery's default serializer)."""
    return {
        "custom_id": job.custom_id,
        "body": dict(job.body),
        "metadata": job.metadata,
        "line": job.line,
        "route": job.route,
    }


def job_of(payload: Mapping[str, Any]) -> BatchJob:
    return BatchJob(
        custom_id=payload.get("custom_id"),
        body=payload.get("body") or {},
        metadata=payload.get("metadata"),
        line=payload.get("line"),
        route=payload["route"],
    )


def job_digest(payload: Mapping[str, Any]) -> str:
    """Which job a recorded result answers: a line fixed since, or another run's, is not it."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=True)
    return hashlib.blake2b(text.encode("ascii"), digest_size=8).hexdigest()


class RunStore:
    """One run's keys on one Redis (a redis-py client). Thread-safe as redis-py is."""

    def __init__(self, redis: Any, namespace: str, run: str, ttl: float = DEFAULT_TTL) -> None:
        self.redis = redis
        base = f"{namespace}:batch:{run}"
        self.results_key = base + ":results"
        self.events_key = base + ":events"
        self.epoch_key = base + ":epoch"
        self.running_key = base + ":running"
        self.lease_ms = int(RUNNING_LEASE * 1000)
        self.ttl_ms = max(1, int(ttl * 1000))
        self._record = redis.register_script(_RECORD)
        self._start = redis.register_script(_START)
        self._stop = redis.register_script(_STOP)
        self._beat = redis.register_script(_BEAT)
        self._running = redis.register_script(_RUNNING)

    # -- the coordinator -------------------------------------------------------------------------

    def begin(self) -> int:
        """A new session: its epoch, which silences every chunk of earlier sessions."""
        pipe = self.redis.pipeline()
        pipe.incr(self.epoch_key)
        pipe.pexpire(self.epoch_key, self.ttl_ms)
        epoch, _ = pipe.execute()
        return int(epoch)

    def running(self) -> int:
        """How many chunks (of any session) are running now."""
        return int(self._running(keys=[self.running_key]))

    def stop(self, epoch: int) -> None:
        """No chunk of session ``epoch`` sends another line; ``m<epoch>`` follows every start
        that may still send."""
        self._stop(keys=[self.epoch_key, self.events_key], args=[epoch, self.ttl_ms])

    def fetch(self, lines: Iterable[int]) -> dict[int, Stored | None]:
        """The lines of ``lines`` recorded, each with its result (None: a line marked written,
        or a value the store never writes)."""
        wanted = list(lines)
        if not wanted:
            return {}
        values = self.redis.hmget(self.results_key, [str(n) for n in wanted])
        return {line: _decode(value) for line, value in zip(wanted, values) if value is not None}

    def mark_written(self, lines: Iterable[int]) -> None:
        """The output holds these lines now: keep only the mark that they are done."""
        names = [str(n) for n in lines]
        if names:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self.results_key, mapping=dict.fromkeys(names, WRITTEN))
            pipe.pexpire(self.results_key, self.ttl_ms)
            pipe.execute()

    def delete(self) -> None:
        """Every key of the run (it ended with every line written)."""
        self.redis.delete(self.results_key, self.events_key, self.epoch_key, self.running_key)

    def forget(self, lines: Iterable[int]) -> None:
        """Drop recorded results that this session sends again (a fixed line, an error the
        resume retries)."""
        names = [str(n) for n in lines]
        if names:
            self.redis.hdel(self.results_key, *names)

    def events(self, timeout: float) -> list[str]:
        """The events that have come, waiting up to ``timeout`` seconds for the first."""
        first = self.redis.blpop([self.events_key], timeout=timeout)
        if first is None:
            return []
        more = self.redis.lpop(self.events_key, EVENT_BATCH) or []
        return [_text(first[1]), *(_text(item) for item in more)]

    # -- a chunk task ----------------------------------------------------------------------------

    def start_chunk(self, epoch: int, chunk: str) -> bool:
        """Announce ``chunk``; False (nothing announced) if its session is no longer live."""
        keys = [self.epoch_key, self.events_key, self.running_key]
        return bool(self._start(keys=keys, args=[epoch, chunk, self.ttl_ms, self.lease_ms]))

    def beat(self, epoch: int, chunk: str) -> bool:
        """Renew ``chunk``'s lease; whether its session is still live."""
        value = self._beat(keys=[self.epoch_key, self.running_key], args=[chunk, self.lease_ms])
        return value is not None and int(value) == epoch

    def recorded(self, lines: Iterable[int]) -> set[int]:
        """Which of ``lines`` have a result already (a chunk delivered again skips them)."""
        wanted = list(lines)
        if not wanted:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for line in wanted:
            pipe.hexists(self.results_key, str(line))
        return {line for line, there in zip(wanted, pipe.execute()) if there}

    def record(self, digest: str, result: BatchResult) -> bool:
        """Record a line's result (and announce it); False if the line had one already."""
        value = json.dumps({"d": digest, "r": dataclasses.asdict(result)}, ensure_ascii=True)
        added = self._record(
            keys=[self.results_key, self.events_key],
            args=[result.line, value, self.ttl_ms],
        )
        return bool(added)

    def announce(self, lines: Iterable[int]) -> None:
        """Say again that ``lines`` have results: a chunk skipping them (recorded by another
        delivery, or by a chunk of an earlier session) must not leave its coordinator, which
        may not have been waiting for them when they were first announced, without them."""
        events = [f"r{line}" for line in lines]
        if events:
            pipe = self.redis.pipeline()
            pipe.rpush(self.events_key, *events)
            pipe.pexpire(self.events_key, self.ttl_ms)
            pipe.execute()

    def end_chunk(self, chunk: str, error: str | None) -> None:
        event = "e" + chunk + ("" if error is None else "\t" + error)
        pipe = self.redis.pipeline()
        pipe.zrem(self.running_key, chunk)
        pipe.rpush(self.events_key, event)
        pipe.pexpire(self.events_key, self.ttl_ms)
        pipe.execute()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(BatchResult))


def _decode(value: Any) -> Stored | None:
    """A stored result, or None for nothing (or anything the store never writes: the key
    space is not trusted, and a line without a usable result is simply sent)."""
    if value is None:
        return None
    try:
        data = json.loads(value)
        fields = data["r"]
        result = BatchResult(**{k: v for k, v in fields.items() if k in _RESULT_FIELDS})
        return Stored(digest=str(data["d"]), result=result)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
