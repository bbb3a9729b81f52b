"""Shared limits on a real redis-server started here on a free loopback port.

Skipped when redis-server is not installed, except under CI (CI=true), where .ci/run
installs it and a missing server is a failure.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from comet_sync import (
    Clock,
    CometClient,
    InvalidArgumentError,
    LimiterTimeoutError,
    RateControl,
    RateLimitError,
)
from comet_sync._http.headers import ServerWord
from comet_sync._rate.cap import ConcurrencyCap
from comet_sync.contrib.redis import LimiterUnavailableError, RedisLimiter
from comet_sync.testing import FakeCometServer

from .conftest import user
from .redis_process import RedisProcess, free_port, require_redis_server

require_redis_server(module=True)

# Spawns processes or runs real-time scenarios: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess()
    yield server
    server.kill()


def limiter(redis_server: RedisProcess, ns: str, **kw) -> RedisLimiter:
    return RedisLimiter.from_url(redis_server.url, namespace=ns, **kw)


def test_the_cluster_limit_holds_across_limiters(redis_server) -> None:
    ns = uuid.uuid4().hex
    a, b = (
        limiter(redis_server, ns, max_concurrency=3),
        limiter(redis_server, ns, max_concurrency=3),
    )
    permits = [a.acquire(), b.acquire(), a.acquire()]
    assert all(permits)
    with pytest.raises(LimiterTimeoutError, match="shared slot"):
        b.acquire(timeout=0.2)  # the fourth waits: 3 leases are out
    permits[0].release(200)
    assert b.acquire(timeout=1.0) is not None


def test_leases_of_a_killed_process_expire(redis_server) -> None:
    ns = uuid.uuid4().hex
    code = (
        "import os, sys\n"
        "from comet_sync.contrib.redis import RedisLimiter\n"
        f"lim = RedisLimiter.from_url({redis_server.url!r}, namespace={ns!r}, "
        "max_concurrency=2, lease_ttl=1.0)\n"
        "assert lim.acquire() and lim.acquire()\n"
        "os._exit(0)  # killed: nothing released, nothing renewed\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    lim = limiter(redis_server, ns, max_concurrency=2, lease_ttl=1.0)
    with pytest.raises(LimiterTimeoutError):
        lim.acquire(timeout=0.2)  # the dead process still holds both
    started = time.monotonic()
    assert lim.acquire(timeout=3.0) is not None
    assert time.monotonic() - started < 2.0  # freed within the TTL


def test_leases_are_renewed_while_held(redis_server) -> None:
    ns = uuid.uuid4().hex
    holder = limiter(redis_server, ns, max_concurrency=1, lease_ttl=0.6)
    permit = holder.acquire()
    other = limiter(redis_server, ns, max_concurrency=1, lease_ttl=0.6)
    with pytest.raises(LimiterTimeoutError):
        other.acquire(timeout=1.5)  # still held after 2.5 TTLs: renewed
    permit.release(200)
    assert other.acquire(timeout=1.0) is not None


def bound(lim: RedisLimiter, max_hold: float) -> RedisLimiter:
    # The system's clock: Redis keeps its pauses and leases on its own real time.
    lim.bind(clock=Clock(), max_hold=max_hold)
    return lim


def teach(lim: RedisLimiter, level: int, rounds: int = 5) -> None:
    """Successes sent with 1 to ``level`` in flight, ``rounds`` times: the cap policy's typical
    level is then ``level``."""
    for _ in range(rounds):
        for permit in [lim.acquire(timeout=2) for _ in range(level)]:
            permit.release(200)


def test_a_429_cuts_the_shared_limit_and_a_long_retry_after_pauses_everyone(
    redis_server,
) -> None:
    ns = uuid.uuid4().hex
    # max_wait 1 s: the server's 1,000,000,000 s is clamped to it, locally and in Redis.
    a = bound(limiter(redis_server, ns, max_concurrency=10), 1.0)
    b = bound(limiter(redis_server, ns, max_concurrency=10), 1.0)
    teach(a, 3)
    burst = [a.acquire() for _ in range(5)]
    for p in burst[:3]:
        p.release(200)
    for p in burst[3:]:  # one burst of 429s above what succeeds: one cut, to the cap
        p.release(429, throttled=True, word=ServerWord(1e9, None, None, None))
    assert a.limit == 3
    assert 0 < b.state().held_for <= 1.0
    started = time.monotonic()
    permit = b.acquire()  # another "process" waits out the pause, clamped to 1 s
    assert 0.9 <= time.monotonic() - started < 3.0
    permit.release(200)
    assert b.limit == 3
    # A fresh process in the namespace later is not stopped for ever.
    fresh = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    fresh.acquire(timeout=2.0).release(200)


def test_a_short_retry_after_pauses_nobody_else(redis_server) -> None:
    ns = uuid.uuid4().hex
    a = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    b = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    a.acquire().release(429, throttled=True, word=ServerWord(1.0, None, None, None))
    started = time.monotonic()
    b.acquire().release(200)
    assert time.monotonic() - started < 0.5
    assert b.state().held_for == 0.0


def worker(url: str, ns: str, base_url: str, jobs: int, queue) -> None:
    lim = RedisLimiter.from_url(url, namespace=ns, max_concurrency=4)
    with CometClient(
        api_key="redis-test-key-0123456789", base_url=base_url, limiter=lim, max_concurrency=8
    ) as client:
        batch = ({"model": "m", "messages": user(f"{os.getpid()}-{i}")} for i in range(jobs))
        results = list(client.chat.completions.map(batch, return_exceptions=True))
    queue.put(sum(isinstance(r, BaseException) for r in results))


def test_processes_sharing_a_namespace_never_exceed_the_limit(redis_server) -> None:
    ns = uuid.uuid4().hex
    ctx = multiprocessing.get_context("fork")
    with FakeCometServer(max_in_flight=4, latency=0.03) as fake:
        queue = ctx.Queue()
        procs = [
            ctx.Process(target=worker, args=(redis_server.url, ns, fake.base_url, 30, queue))
            for _ in range(3)
        ]
        for p in procs:
            p.start()
        failures = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        stats = fake.stats()
    assert failures == [0, 0, 0]
    assert stats.max_in_flight <= 4
    assert stats.statuses.get(429, 0) == 0
    assert stats.statuses.get(200) == 90


def test_redis_down_fails_open_to_the_local_limiter(redis_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="comet_sync")
    lim = limiter(redis_server, uuid.uuid4().hex, max_concurrency=2)
    lim.acquire().release(200)
    redis_server.kill()
    started = time.monotonic()
    for _ in range(3):
        permit = lim.acquire(timeout=5)
        assert permit.held
        permit.release(200)
    assert time.monotonic() - started < 2.0  # no hang on the dead server
    assert caplog.text.count("unavailable") == 1  # logged once per outage


def test_redis_down_fails_closed_when_asked_once_the_budget_is_spent(redis_server) -> None:
    lim = limiter(redis_server, uuid.uuid4().hex, failure="closed")
    redis_server.kill()
    with pytest.raises(LimiterUnavailableError, match="did not answer"):
        lim.acquire(timeout=0.5)


def test_redis_restarting_delays_closed_policy_calls_instead_of_failing_them(redis_server) -> None:
    lim = limiter(redis_server, uuid.uuid4().hex, failure="closed")
    lim.acquire().release(200)
    redis_server.kill()
    restarted: list[RedisProcess] = []
    restart = threading.Timer(0.6, lambda: restarted.append(RedisProcess(redis_server.port)))
    restart.start()
    try:
        # Asked while Redis is down: it waits for the restart, within its budget, and gets a
        # shared lease (Redis answered it), not a refusal.
        permit = lim.acquire(timeout=10)
        restart.join()  # (the restart's own check may finish after the acquire has)
        assert permit.held and permit.lease is not None and restarted
        permit.release(200)
    finally:
        restart.join()
        for process in restarted:
            process.kill()


def test_the_client_refuses_calls_when_closed_policy_and_redis_down(redis_server) -> None:
    with FakeCometServer() as fake:
        lim = limiter(redis_server, uuid.uuid4().hex, failure="closed")
        client = CometClient(
            api_key="redis-test-key-0123456789", base_url=fake.base_url, limiter=lim
        )
        client.chat.completions.create(model="m", messages=user("up"))
        redis_server.kill()
        with pytest.raises(LimiterUnavailableError):
            client.chat.completions.create(model="m", messages=user("down"), total_timeout=0.5)
        assert fake.stats().requests == 1
        client.close()


# -- Redis state that is not ours to trust (issue 21, items 11 and 12) ---------------------------


def raw_client(redis_server: RedisProcess):
    import redis

    return redis.Redis.from_url(redis_server.url)


def redis_ms(raw) -> int:
    seconds, micros = raw.time()
    return int(seconds) * 1000 + int(micros) // 1000


# What someone else may leave in our keys: values we never write, keys of another type.
TAMPERED = {
    "limit garbage": ("limit", "set", "garbage"),
    "limit NaN": ("limit", "set", "nan"),
    "limit infinite": ("limit", "set", "inf"),
    "limit 1,000": ("limit", "set", "1000"),
    "limit negative": ("limit", "set", "-3"),
    "limit a hash": ("limit", "hset", "x"),
    "lastcut garbage": ("lastcut", "set", "garbage"),
    "lastcut a list": ("lastcut", "rpush", "x"),
    "lastcut in the year 33658": ("lastcut", "set", "1e15"),
    "cooldown garbage": ("cooldown", "set", "garbage"),
    "cooldown a set": ("cooldown", "sadd", "x"),
    "tat garbage": ("tat", "set", "garbage"),
    "tat a hash": ("tat", "hset", "x"),
    "tat in the year 33658": ("tat", "set", "1e15"),
    "leases a string": ("leases", "set", "x"),
}


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_tampered_keys_are_repaired_or_ignored_and_the_configured_cap_wins(
    redis_server, case
) -> None:
    ns = uuid.uuid4().hex
    key, command, value = TAMPERED[case]
    raw = raw_client(redis_server)
    if command == "hset":
        raw.hset(f"{ns}:{key}", "field", value)
    else:
        getattr(raw, command)(f"{ns}:{key}", value)
    a, b = (
        bound(limiter(redis_server, ns, max_concurrency=4, rpm=60_000, burst_seconds=1), 30.0)
        for _ in range(2)
    )
    teach(a, 2)  # a's successes are sent with 1 or 2 in flight
    permits = [lim.acquire(timeout=2) for lim in (a, b, a, b)]
    assert all(p.lease is not None for p in permits)  # shared leases, not a fallback
    for lim in (a, b):  # a shared limit of 1,000 (or infinity) does not lift the cap of 4
        with pytest.raises(LimiterTimeoutError, match="shared slot"):
            lim.acquire(timeout=0.1)
    # a's second, sent with 3 in flight, refused: a cap, cut from the configured 4 to 2.
    permits[2].release(429, throttled=True, word=ServerWord(1.0, None, None, None))
    assert a.limit == 2
    for permit in permits[:2] + permits[3:]:
        permit.release(200)
    a.acquire(timeout=2).release(200)


def test_the_renewer_survives_any_error(redis_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="comet_sync")
    ns = uuid.uuid4().hex
    lim = limiter(redis_server, ns, max_concurrency=1, lease_ttl=0.3)
    renew, calls = lim._renew_script, []

    def fails_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("not a Redis error")
        return renew(**kwargs)

    lim._renew_script = fails_once
    permit = lim.acquire()
    deadline = time.monotonic() + 5
    while len(calls) < 3:  # failed once, then renewed twice
        assert lim._renewer.is_alive(), "the renewer died of an error"
        assert time.monotonic() < deadline, "the renewer stopped renewing"
        time.sleep(0.02)
    assert "could not renew 1 leases (RuntimeError" in caplog.text
    assert "leases renewed again" in caplog.text
    with pytest.raises(LimiterTimeoutError, match="shared slot"):
        limiter(redis_server, ns, max_concurrency=1).acquire(timeout=0.1)  # still held
    permit.release(200)


def test_redis_out_of_memory_keeps_held_leases_and_the_cap(redis_server) -> None:
    ns = uuid.uuid4().hex
    raw = raw_client(redis_server)
    holder = limiter(redis_server, ns, max_concurrency=4, lease_ttl=0.6)
    other = limiter(redis_server, ns, max_concurrency=4, lease_ttl=0.6)
    held = [holder.acquire(timeout=2) for _ in range(4)]
    raw.config_set("maxmemory-policy", "noeviction")
    raw.config_set("maxmemory", "1")  # every write that may add memory is refused
    try:
        # Three lease TTLs: leases that were not renewed would have lapsed, and their slots
        # been granted a second time.
        with pytest.raises(LimiterTimeoutError, match="shared slot"):
            other.acquire(timeout=1.8)
        assert holder._renewer.is_alive()
        assert raw.zcard(f"{ns}:leases") == 4
    finally:
        raw.config_set("maxmemory", "0")
    for permit in held:
        permit.release(200)
    other.acquire(timeout=2).release(200)


@pytest.mark.parametrize("failure", ["open", "closed"])
def test_a_read_only_replica_follows_the_failure_policy(redis_server, failure, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="comet_sync")
    raw = raw_client(redis_server)
    lim = limiter(redis_server, uuid.uuid4().hex, failure=failure, lease_ttl=0.3)
    held = lim.acquire()
    # A replica of a master that is not there: it keeps its data and refuses every write.
    raw.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    try:
        deadline = time.monotonic() + 5
        while "could not renew 1 leases (ReadOnlyError" not in caplog.text:
            assert lim._renewer.is_alive(), "the renewer died of ReadOnlyError"
            assert time.monotonic() < deadline, "the renewer never reported its failures"
            time.sleep(0.02)
        if failure == "open":
            permit = lim.acquire(timeout=2)
            assert permit.held and permit.lease is None  # only this process's limiter
            permit.release(200)
        else:
            with pytest.raises(LimiterUnavailableError, match="ReadOnlyError"):
                lim.acquire(timeout=0.5)
        held.release(200)  # the lease it cannot remove expires by itself
        assert lim._renewer.is_alive()
    finally:
        raw.execute_command("REPLICAOF", "NO", "ONE")
    lim.acquire(timeout=2).release(200)


class SleepLog:
    """The system's clock, with every sleep recorded."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)

    def clock(self) -> Clock:
        return Clock(sleep=self.sleep)


def test_a_pause_without_a_ttl_is_honoured_for_max_wait_at_most(redis_server) -> None:
    ns = uuid.uuid4().hex
    raw = raw_client(redis_server)
    raw.set(f"{ns}:cooldown", redis_ms(raw) + 10**12)  # for good, and no TTL
    log = SleepLog()
    lim = limiter(redis_server, ns)
    lim.bind(clock=log.clock(), max_hold=0.5)
    lim.acquire(timeout=5).release(200)
    assert 0.5 <= sum(log.sleeps) <= 0.5 * 1.1 + 0.01  # it waited its max_wait, no longer
    deadline = time.monotonic() + 2
    while raw.exists(f"{ns}:cooldown"):  # and the key was given a TTL: others wait no longer
        assert time.monotonic() < deadline, f"still there, TTL {raw.pttl(f'{ns}:cooldown')}"
        time.sleep(0.02)


def test_each_client_clamps_a_shared_pause_to_its_own_max_wait(redis_server) -> None:
    ns = uuid.uuid4().hex
    patient = bound(limiter(redis_server, ns), 60.0)
    patient.acquire().release(429, throttled=True, word=ServerWord(40.0, None, None, None))
    log = SleepLog()
    hasty = limiter(redis_server, ns)
    hasty.bind(clock=log.clock(), max_hold=0.5)
    for _ in range(3):  # delayed once by its own max_wait, then not failed nor delayed again
        hasty.acquire(timeout=5).release(200)
    assert 0.5 <= sum(log.sleeps) <= 0.5 * 1.1 + 0.01
    with pytest.raises(LimiterTimeoutError, match="pause"):
        patient.acquire(timeout=1)  # whose max_wait is 60 still honours all 40 s


def test_a_client_with_a_short_max_wait_delays_under_another_clients_pause(redis_server) -> None:
    ns = uuid.uuid4().hex
    with FakeCometServer() as fake:
        patient = CometClient(
            api_key="redis-test-key-0123456789",
            base_url=fake.base_url,
            limiter=limiter(redis_server, ns),
            max_wait=60,
        )
        hasty = CometClient(
            api_key="redis-test-key-0123456789",
            base_url=fake.base_url,
            limiter=limiter(redis_server, ns),
            max_wait=1,
        )
        fake.fail(429, headers={"Retry-After": "40"})
        with pytest.raises(RateLimitError):  # its budget is shorter than the Retry-After
            patient.chat.completions.create(model="m", messages=user("a"), total_timeout=2)
        jobs = ({"model": "m", "messages": user(f"b{i}"), "total_timeout": 10} for i in range(8))
        results = list(hasty.chat.completions.map(jobs, return_exceptions=True))
        assert [r for r in results if isinstance(r, BaseException)] == []
        patient.close()
        hasty.close()


def test_an_infinite_max_wait_honours_a_pause_for_as_long_as_it_lasts(redis_server) -> None:
    ns = uuid.uuid4().hex
    lim = bound(limiter(redis_server, ns), float("inf"))
    lim.acquire().release(429, throttled=True, word=ServerWord(5.0, None, None, None))
    with pytest.raises(LimiterTimeoutError, match="shared pause"):
        lim.acquire(timeout=1)
    assert 4 < lim.state().held_for <= 5


def test_bad_arguments_raise_our_error(redis_server) -> None:
    with pytest.raises(InvalidArgumentError, match="failure"):
        limiter(redis_server, "ns", failure="maybe")
    with pytest.raises(InvalidArgumentError, match="max_concurrency"):
        limiter(redis_server, "ns", max_concurrency=0)


# -- the shared limit is cut by the local limiter's rule (issue 22, item 6) ---------------------


def test_the_shared_limit_after_repeated_429s_is_what_the_local_cap_policy_gives(
    redis_server,
) -> None:
    ns = uuid.uuid4().hex
    shared = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    local = ConcurrencyCap(10, initial=10)  # the local limiter's policy, on made-up times
    t = 0.0

    def send(count: int, refused_from: int) -> None:
        """``count`` sends at once; those sent with ``refused_from`` or more in flight are
        refused, as a server capping concurrency just under that does."""
        nonlocal t
        permits = [shared.acquire(timeout=2) for _ in range(count)]
        for level, permit in enumerate(permits, 1):
            if level >= refused_from:
                permit.release(429, throttled=True, word=ServerWord(1.0, None, None, None))
                local.on_throttled(level, level, t + 10.0)
            else:
                permit.release(200)
                local.on_success(level, level, local.effective, t, t + 0.01)
        t += 100.0

    for _ in range(5):
        send(2, refused_from=3)  # successes with 1 or 2 in flight: typical 2
    send(5, refused_from=3)  # a burst refused above 2: one cut, to 2
    send(2, refused_from=3)  # under the limit: nothing refused
    send(2, refused_from=2)  # a 429 at a level successes had: about rate, no cut
    assert local.effective == 2
    # The old rule (x 0.6 per 429 sent after the last cut) gave 10 -> 6 -> 3.6 here.
    assert shared.limit == local.effective


def test_429s_about_rate_leave_the_shared_limit_to_pacing(redis_server) -> None:
    ns = uuid.uuid4().hex
    a = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    teach(a, 4)
    for level in range(1, 5):  # refused at every level successes had: a rate, not a cap
        burst = [a.acquire(timeout=2) for _ in range(level)]
        burst[-1].release(429, throttled=True, word=ServerWord(1.0, None, None, None))
        for permit in burst[:-1]:
            permit.release(200)
    assert a.limit == 10
    fresh = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    fresh.acquire(timeout=2).release(200)
    assert fresh.limit == 10


def test_without_adaptive_control_the_shared_limit_is_never_cut(redis_server) -> None:
    ns = uuid.uuid4().hex
    fixed = RateControl(adaptive=False)
    a = bound(limiter(redis_server, ns, max_concurrency=10, rate_control=fixed), 30.0)
    teach(a, 2)
    burst = [a.acquire(timeout=2) for _ in range(5)]
    for permit in burst[2:]:  # refused above 2: a cap, were the limit adaptive
        permit.release(429, throttled=True, word=ServerWord(1.0, None, None, None))
    for permit in burst[:2]:
        permit.release(200)
    assert a.limit == 10


def test_decrease_is_accepted_and_ignored_with_a_warning(redis_server) -> None:
    with pytest.warns(DeprecationWarning, match="decrease"):
        lim = limiter(redis_server, uuid.uuid4().hex, decrease=0.5)
    assert lim.acquire(timeout=2) is not None


# -- our errors, never a bare ValueError (issue 22, item 6) -------------------------------------

BAD_ARGUMENTS = {
    "max_concurrency a float": ("max_concurrency", 2.5),
    "max_concurrency a bool": ("max_concurrency", True),
    "max_concurrency text": ("max_concurrency", "4"),
    "rpm zero": ("rpm", 0),
    "rpm negative": ("rpm", -60),
    "rpm NaN": ("rpm", float("nan")),
    "rpm infinite": ("rpm", float("inf")),
    "burst_seconds zero": ("burst_seconds", 0),
    "lease_ttl under a millisecond": ("lease_ttl", 0.0001),
    "lease_ttl infinite": ("lease_ttl", float("inf")),
    "lease_ttl NaN": ("lease_ttl", float("nan")),
    "socket_timeout negative": ("socket_timeout", -1.0),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=list(BAD_ARGUMENTS))
def test_each_bad_argument_raises_our_error_naming_it(redis_server, case) -> None:
    argument, value = BAD_ARGUMENTS[case]
    with pytest.raises(InvalidArgumentError) as caught:
        limiter(redis_server, uuid.uuid4().hex, **{argument: value})
    assert caught.value.argument == argument


@pytest.mark.parametrize(
    "url", ["bogus://:s3cret-pass@localhost:6379/0", "redis://:s3cret-pass@localhost:port/0"]
)
def test_a_url_redis_cannot_read_raises_our_error_without_the_password(url) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        RedisLimiter.from_url(url, namespace="ns")
    assert caught.value.argument == "url"
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- the shared pace (issue 24) -----------------------------------------------------------------


def _client(redis_server: RedisProcess, ns: str, base_url: str) -> CometClient:
    return CometClient(
        api_key="redis-test-key-0123456789",
        base_url=base_url,
        limiter=limiter(redis_server, ns, max_concurrency=8),
        max_concurrency=8,
        max_workers=8,
        max_retries=20,
    )


def _run(client: CometClient, tag: str, jobs: int) -> list[object]:
    batch = ({"model": "m", "messages": user(f"{tag}-{i}")} for i in range(jobs))
    return list(client.chat.completions.map(batch, return_exceptions=True))


@pytest.mark.parametrize("shared", [True, False])
def test_a_pace_found_by_one_process_paces_another_from_its_first_request(
    redis_server: RedisProcess, shared: bool
) -> None:
    """One client finds a server's 20 requests/s; another on the same namespace (another
    process, or host) starts with 8 threads and sends at that pace from its first request:
    none of its calls is refused. On a namespace of its own it pays for its own 429s."""
    ns = uuid.uuid4().hex
    with FakeCometServer(rps=20, burst=4, latency=0.01) as fake:
        with _client(redis_server, ns, fake.base_url) as first:
            assert not any(isinstance(r, BaseException) for r in _run(first, "a", 60))
            learned = first.metrics.snapshot().limiter.models["m"].rate  # type: ignore[index]
            # (Up to 30/s, 10 sends spaced by it fit the bucket of 4 refilled at 20/s.)
            assert learned is not None and 10 < learned < 30
        refused_before = fake.stats().statuses.get(429, 0)
        time.sleep(0.2)  # the server's bucket refills: what follows is the newcomer's doing
        with _client(redis_server, ns if shared else uuid.uuid4().hex, fake.base_url) as second:
            assert not any(isinstance(r, BaseException) for r in _run(second, "b", 10))
            state = second.metrics.snapshot().limiter.models["m"]  # type: ignore[index]
        refused = fake.stats().statuses.get(429, 0) - refused_before
    if shared:
        assert refused == 0
        assert state.rate_source == "learned" and state.rate is not None
        assert state.rate == pytest.approx(learned, rel=0.3)
    else:
        assert refused > 0


def test_a_pace_grown_elsewhere_meanwhile_is_taken_not_grown_twice(
    redis_server: RedisProcess,
) -> None:
    ns = uuid.uuid4().hex
    a = bound(limiter(redis_server, ns), 30.0)
    b = bound(limiter(redis_server, ns), 30.0)
    a._pace.publish("m", 20.0, measured=True)
    b.acquire("m", timeout=2).release(200)  # b sees 20 and paces by it
    assert b.state().models["m"].rate == pytest.approx(20.0)  # type: ignore[index]
    a._pace.publish("m", 21.0, measured=False)  # a grew it from the 20 it wrote
    b._pace.publish("m", 21.0, measured=False)  # b grew the same 20: not again on top
    assert float(a._redis.get(f"{ns}:pace:m")) == 21.0
    b._pace.publish("m", 15.0, measured=True)  # a measure replaces whatever is there
    assert float(a._redis.get(f"{ns}:pace:m")) == 15.0
    a.acquire("m", timeout=2).release(200)
    assert a.state().models["m"].rate == pytest.approx(15.0, rel=0.05)  # type: ignore[index]


def test_the_share_is_read_off_the_namespaces_sends_over_the_last_second() -> None:
    from comet_sync.contrib._redis_pace import SharedPaceBoard

    now = [0.0]
    board = SharedPaceBoard(
        namespace="ns",
        script=None,
        ttl=600.0,
        told=False,
        monotonic=lambda: now[0],
        adopt=lambda model, rate: None,
        on_error=lambda exc: None,
    )
    assert board.scale("m") == 1.0  # nothing sent: ours alone
    for recent in (3, 6, 9, 12):  # a third of the namespace's sends are ours
        now[0] += 0.1
        board.granted("m", recent)
    assert board.scale("m") == pytest.approx(3.0)
    assert board.scale("other") == 1.0
    now[0] += 2.0  # our sends of over a second ago say nothing of the share now
    board.granted("m", 1)
    assert board.scale("m") == 1.0
    # A burst of ours, then the others' (sends come in bursts): still the share.
    for _ in range(4):
        board.granted("m", 5)
    board.granted("m", 13)
    assert board.scale("m") == pytest.approx(13 / 6)


def test_the_share_is_of_what_the_server_took_refused_sends_leave_both_counts(
    redis_server: RedisProcess,
) -> None:
    """While a server refuses, refusals fall unevenly on the processes sharing the quota: a
    share of sends read 2 to 4 for 4 equal processes, and paces of 25 to 74/s were read off
    50/s. A 429 takes its send out of the namespace's count (in Redis) and of ours."""
    ns = uuid.uuid4().hex
    a = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    other = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    sent = raw_client(redis_server)
    ours = [a.acquire("m", timeout=2) for _ in range(2)]
    theirs = [other.acquire("m", timeout=2) for _ in range(4)]
    assert sent.zcard(f"{ns}:sent:m") == 6
    theirs[0].release(429, throttled=True)
    ours[0].release(429, throttled=True)
    assert sent.zcard(f"{ns}:sent:m") == 4
    ours[1].release(200)
    theirs[1].release(200)
    assert sent.zcard(f"{ns}:sent:m") == 4
    a.acquire("m", timeout=2).release(200)  # 5 taken in the namespace, 2 of them ours
    assert a._pace.scale("m") == pytest.approx(5 / 2)


def test_a_first_429s_guess_slows_only_its_own_process(redis_server: RedisProcess) -> None:
    """The first 429, with nothing measured yet, halves what this process sent: a guess of its
    own. Shared, it slowed every process on the quota (a told rpm over 4 processes ran 1.2 to
    1.5x slower on one stray 429); only a pace a measure backs is shared."""
    ns = uuid.uuid4().hex
    a = bound(limiter(redis_server, ns, max_concurrency=10), 30.0)
    burst = [a.acquire("m", timeout=2) for _ in range(6)]
    for permit in burst[:-1]:
        permit.release(200)
    burst[-1].release(429, throttled=True)
    assert a.state().models["m"].rate is not None  # type: ignore[index]  (paced here)
    assert a._redis.get(f"{ns}:pace:m") is None  # and nowhere else
