"""Many processes, one upstream: per-process limiters versus the shared Redis limiter.

    .venv/bin/python benchmarks/multiprocess.py     (needs redis-server on the PATH)

4 processes x 8 threads send 400 jobs (100 each) to one fake server, in one run:
  A. the server allows 4 requests in flight, 50 ms each (ideal: 400 / 4 x 0.05 s = 5 s);
  B. the server allows 50 requests/s, 20 ms each (ideal: 400 / 50 = 8 s);
  C. a sliding window of 50 requests/s (benchmarks/servers.py), 20 ms, 429s with Retry-After
     in whole seconds and no rate headers (ideal 8 s).
Per-process: each process's own adaptive limiter, not told the limit (max_concurrency=8).
Redis: one RedisLimiter namespace told the cluster limit (4 in flight, or rpm=3000), and for B
also not told: the pace one process finds from 429s paces them all (shared in Redis).
Printed: wall / ideal, 429s / jobs, failed jobs, the most requests the server saw in flight,
and the p99 of an uncontended Redis acquire on loopback (target <= 2 ms).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any, Callable

from comet_sync import CometClient
from comet_sync.contrib.redis import RedisLimiter
from comet_sync.testing import FakeCometServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import LimitServer, SlidingWindow

PROCESSES, THREADS, JOBS = 4, 8, 400


def worker(base_url: str, redis_kw: dict[str, Any] | None, tag: str, queue: Any) -> None:
    limiter = RedisLimiter.from_url(**redis_kw) if redis_kw else None
    with CometClient(
        api_key="bench-key-0123456789",
        base_url=base_url,
        limiter=limiter,
        max_concurrency=8,
        max_workers=THREADS,
    ) as client:
        jobs = (
            {"model": "m", "messages": [{"role": "user", "content": f"{tag}-{i}"}]}
            for i in range(JOBS // PROCESSES)
        )
        results = list(client.chat.completions.map(jobs, return_exceptions=True))
    queue.put(sum(isinstance(r, BaseException) for r in results))


def run(
    server_kw: dict[str, Any] | Callable[[], Any],
    redis_kw: dict[str, Any] | None,
    ideal: float,
    label: str,
) -> None:
    """``server_kw``: FakeCometServer's arguments, or a factory of another server."""
    ctx = multiprocessing.get_context("fork")
    make = server_kw if callable(server_kw) else lambda: FakeCometServer(**server_kw)
    with make() as server:
        queue = ctx.Queue()
        started = time.monotonic()
        procs = [
            ctx.Process(target=worker, args=(server.base_url, redis_kw, f"p{i}", queue))
            for i in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        failed = sum(queue.get() for _ in procs)
        for p in procs:
            p.join()
        wall = time.monotonic() - started
        stats = server.stats()
    n429 = stats.statuses.get(429, 0)
    print(
        f"{label:38} wall {wall:5.2f}s = {wall / ideal:4.2f}x ideal, 429s {n429 / JOBS:6.1%},"
        f" failed {failed}, max in flight {stats.max_in_flight}",
        flush=True,
    )


def acquire_p99(url: str) -> float:
    limiter = RedisLimiter.from_url(url, namespace=uuid.uuid4().hex, max_concurrency=8)
    times = []
    for _ in range(2000):
        started = time.perf_counter()
        permit = limiter.acquire()
        times.append(time.perf_counter() - started)
        permit.release(200)
    return statistics.quantiles(times, n=100)[98]


def main() -> None:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        a = {"max_in_flight": 4, "latency": 0.05}
        run(a, None, 5.0, "A 4 in flight, per-process limiters")
        run(
            a,
            {"url": url, "namespace": uuid.uuid4().hex, "max_concurrency": 4},
            5.0,
            "A 4 in flight, Redis limiter",
        )
        b = {"rps": 50, "burst": 5, "latency": 0.02}
        run(b, None, 8.0, "B 50 req/s, per-process limiters")
        run(
            b,
            {"url": url, "namespace": uuid.uuid4().hex, "max_concurrency": 8},
            8.0,
            "B 50 req/s, Redis, not told (shared pace)",
        )
        run(
            b,
            {"url": url, "namespace": uuid.uuid4().hex, "max_concurrency": 8, "rpm": 3000},
            8.0,
            "B 50 req/s, Redis limiter",
        )
        # A sliding window refusing with a Retry-After in whole seconds: every refused caller
        # sleeps a second, and refusals come in runs too short to measure.
        c = lambda: LimitServer([SlidingWindow(50, 1.0)], latency=0.02)  # noqa: E731
        run(c, None, 8.0, "C 50/s sliding, per-process limiters")
        run(
            c,
            {"url": url, "namespace": uuid.uuid4().hex, "max_concurrency": 8},
            8.0,
            "C 50/s sliding, Redis, not told",
        )
        print(f"p99 uncontended Redis acquire: {acquire_p99(url) * 1000:.2f} ms (target <= 2 ms)")
    finally:
        redis.kill()


if __name__ == "__main__":
    main()
