"""The batch runner at scale: memory and throughput.

    .venv/bin/python benchmarks/batch.py [--jobs 200000] [--small 20000] [--concurrency 16]
        [--throughput 4,16,64] [--throughput-jobs 30000]

The fake server (zero latency) runs in its own process. Measured in one run:
  * ``comet-sync batch`` on --small and --jobs lines: peak RSS of the batch process (target:
    under 150 MB, and flat as the input grows) and jobs per second;
  * a bare ThreadPoolExecutor + requests loop doing the same work (post each body, parse the
    answer, write one JSON line per job) on --jobs lines: jobs per second.
  * then, for each of --throughput's concurrencies, the batch CLI and the bare loop on
    --throughput-jobs lines, one after the other.
The ratio of the two rates is the target (>= 0.95x) — the batch runner does far more per job:
validation, the limiter, retries, metrics, ordered output, resumability.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

KEY = "bench-key-0123456789"


def serve(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from comet_sync.testing import FakeCometServer

    with FakeCometServer() as server:
        queue.put(server.base_url)
        threading.Event().wait()


def write_input(path: str, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "custom_id": f"job-{i}",
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": f"prompt {i}"}],
                    }
                )
                + "\n"
            )


def run_cli(base_url: str, src: str, out: str, concurrency: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one comet-sync batch run in its own process."""
    code = (
        "import resource, sys\n"
        "from comet_sync._cli import main\n"
        f"rc = main(['batch', {src!r}, '-o', {out!r}, '--concurrency', '{concurrency}',"
        " '--no-progress'])\n"
        "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    env = dict(os.environ, COMETAPI_KEY=KEY, COMETAPI_BASE_URL=base_url)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"batch failed ({result.returncode}): {result.stderr[-2000:]}")
    rss_kb = next(
        int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("MAXRSS_KB")
    )
    return wall, rss_kb / 1024


def run_bare(base_url: str, src: str, out: str, concurrency: int) -> float:
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))
    url = base_url + "/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    lock = threading.Lock()

    def one(line: str, sink) -> None:  # type: ignore[no-untyped-def]
        job = json.loads(line)
        custom_id = job.pop("custom_id")
        r = session.post(url, data=json.dumps(job), headers=headers, timeout=60)
        record = {"custom_id": custom_id, "response": r.json()}
        text = json.dumps(record) + "\n"
        with lock:
            sink.write(text)

    started = time.monotonic()
    with open(src) as lines, open(out, "w") as sink, ThreadPoolExecutor(concurrency) as pool:
        # Bounded submission, as any sane loop over 200,000 jobs would do.
        semaphore = threading.Semaphore(concurrency * 4)
        for line in lines:
            semaphore.acquire()
            future = pool.submit(one, line, sink)
            future.add_done_callback(lambda _f: semaphore.release())
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description="Batch runner: memory and throughput.")
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--throughput", default="4,16,64", help="concurrencies; '' for none")
    parser.add_argument("--throughput-jobs", type=int, default=30_000)
    parser.add_argument(
        "--skip-bare",
        action="store_true",
        help="memory only: no bare pool run (for a --jobs 1000000 run)",
    )
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    base_url = queue.get(timeout=30)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = os.path.join(tmp, "small.jsonl"), os.path.join(tmp, "big.jsonl")
        write_input(small, args.small)
        write_input(big, args.jobs)
        s_wall, s_rss = run_cli(base_url, small, os.path.join(tmp, "s.out"), args.concurrency)
        print(
            f"comet-sync batch, {args.small} jobs: {s_wall:.1f}s, "
            f"{args.small / s_wall:.0f} jobs/s, peak RSS {s_rss:.1f} MB",
            flush=True,
        )
        b_wall, b_rss = run_cli(base_url, big, os.path.join(tmp, "b.out"), args.concurrency)
        print(
            f"comet-sync batch, {args.jobs} jobs: {b_wall:.1f}s, "
            f"{args.jobs / b_wall:.0f} jobs/s, peak RSS {b_rss:.1f} MB",
            flush=True,
        )
        bare = None
        if not args.skip_bare:
            bare = run_bare(base_url, big, os.path.join(tmp, "bare.out"), args.concurrency)
            print(
                f"bare ThreadPoolExecutor + requests, {args.jobs} jobs: {bare:.1f}s, "
                f"{args.jobs / bare:.0f} jobs/s",
                flush=True,
            )
        with open(os.path.join(tmp, "b.out")) as f:
            lines = sum(1 for _ in f)
        counts = [int(n) for n in args.throughput.split(",") if n]
        if counts:
            tsrc = os.path.join(tmp, "t.jsonl")
            write_input(tsrc, args.throughput_jobs)
        for conc in counts:
            t_wall, _ = run_cli(base_url, tsrc, os.path.join(tmp, f"t{conc}.out"), conc)
            t_bare = run_bare(base_url, tsrc, os.path.join(tmp, f"tb{conc}.out"), conc)
            print(
                f"{conc:>2} threads, {args.throughput_jobs} jobs: batch "
                f"{args.throughput_jobs / t_wall:.0f} jobs/s, bare "
                f"{args.throughput_jobs / t_bare:.0f} jobs/s, ratio {t_bare / t_wall:.3f}x "
                "(target >= 0.95x)",
                flush=True,
            )
    print(f"lines written: {lines} of {args.jobs}")
    if bare is not None:
        print(f"throughput ratio (batch / bare): {bare / b_wall:.2f}x (target >= 0.95x)")
    print(
        f"RSS {s_rss:.1f} MB -> {b_rss:.1f} MB for {args.jobs // args.small}x the input: "
        f"{b_rss / s_rss:.3f}x (target: within 10%)"
    )
    server.terminate()


if __name__ == "__main__":
    main()
