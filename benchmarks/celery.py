"""comet_sync on real Celery workers against one rate-limited server: many processes versus one.

    .venv/bin/python benchmarks/celery.py [--jobs N] [--only sliding,bucket] [--configs A,B,kill]
        [--markdown]

(needs redis-server on the PATH and Celery: pip install -e '.[bench]')

This process starts a redis-server (the broker, the result store, the shared limiter) and, for
every run, a fresh rate-limited server from benchmarks/servers.py allowing 50 requests/s with
20 ms of latency, then real ``celery worker --pool threads`` processes of
benchmarks/celery_bench_app.py, set up with ``comet_sync.contrib.celery.setup(app)``'s defaults
(one RedisLimiter on the broker shared by every process; not told the limit):
  A     4 worker processes x 8 threads (two hosts' worth, distinct -n names);
  B     1 worker process x 32 threads (the same total);
  kill  A, with tasks acknowledged late (acks_late, reject_on_worker_lost) and a 10 s broker
        visibility timeout, and one of the 4 processes SIGKILLed once 40% of the jobs have
        been accepted by the server: its unacknowledged tasks go to the others once the
        visibility timeout has passed since it took them, so this row's wall includes up to
        10 s of waiting for them (its wall / ideal is not comparable with A's).
Scenarios: ``sliding`` SlidingWindow(50/1 s), no rate headers, Retry-After in seconds;
``bucket`` TokenBucket(50/s, burst 10) with OpenAI's rate headers. The kill run uses the first
scenario asked for.

Each run sends N jobs (default 1000: ideal = N / 50 s = 20 s), each a task making one chat call
with unique content, and waits for every result. The workers are started and each has answered
a ping before the clock starts. Printed, a row per configuration x scenario: wall (first send
to last result) / ideal; 429s the server sent / jobs; lost jobs (failed, wrong answer, or no
result); requests the server saw / jobs; paid twice (requests accepted beyond one per job);
the most requests the server had in flight at once; then A's wall / B's wall per scenario.
For kill, also: the killed worker's tasks in flight, those it had started (each task notes its
start, worker and task id, in Redis) whose messages were still unacknowledged in the broker
just after the SIGKILL, whatever their call's stage (not sent yet, on the wire, answered but not
acknowledged); the jobs run more than once, and whether every job run or paid twice was one of
those in flight. (Tasks it had taken but not started come back too; sending nothing, they cost
nothing.) A lost job that never started and was neither queued nor unacknowledged after the
kill is named as such: kombu's Redis transport pops a message (BRPOP) before it records it as
unacknowledged, and a worker killed in between takes the message with it.
``--markdown`` adds one Markdown table of the same figures.

Targets (issue 24): A and B each <= 1.10x ideal, <= 5% 429s, 0 lost; kill: 0 lost, paid twice
<= what the killed worker had in flight.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is named celery.py, and Python puts its directory first on sys.path: `import celery`
# would import this file again instead of Celery. The repository's root goes there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable  # noqa: E402

from benchmarks.servers import LimitServer, SlidingWindow, TokenBucket  # noqa: E402

RATE = 50.0  # requests/s the server allows
LATENCY = 0.02
KEY = "bench-key-0123456789"
VISIBILITY_TIMEOUT = 10.0  # must exceed any task's run: a live worker's task would run twice
SETTLE = 0.5
# kombu's Redis transport: the queue's list, and the hash of messages taken, not acknowledged.
QUEUE, UNACKED = "celery", "unacked"


# -- what runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """One ``celery worker --pool threads`` process."""

    name: str
    concurrency: int

    @property
    def hostname(self) -> str:
        return f"{self.name}@bench"  # what the task sees as self.request.hostname


@dataclass(frozen=True)
class Scenario:
    name: str
    server: Callable[[], LimitServer]  # a fresh one for every run


@dataclass
class Live:
    """What a hook may act on, mid-run."""

    fleet: Fleet
    server: LimitServer
    broker: Any  # redis.Redis on the broker's database, answering str
    marks: Any  # ... and on the marks database
    t0: float


# Called once, mid-run; returns notes for the report.
Hook = Callable[[Live], dict[str, Any]]


@dataclass(frozen=True)
class Config:
    name: str
    workers: list[WorkerSpec]
    acks_late: bool = False
    hook: Hook | None = None
    hook_at: float = 0.4  # the hook is called once this share of the jobs has been accepted


def kill_one(live: Live) -> dict[str, Any]:
    """SIGKILL the second worker. Its tasks in flight: those it had started whose messages it
    had not acknowledged (acks_late: done after the task has returned and stored its result),
    their call not sent yet, on the wire or answered: the tasks run again, maybe paid twice.
    Also noted: every task still in the broker (queued or unacknowledged by anyone)."""
    victim = live.fleet.specs[1]
    at = time.monotonic() - live.t0
    live.fleet.kill(victim.name)
    # What the dead process wrote before it died may still be unread in redis-server's socket
    # buffers: let it read that first.
    time.sleep(SETTLE)
    unacked = {task_id(raw) for raw in live.broker.hvals(UNACKED)}
    queued = {task_id(raw) for raw in live.broker.lrange(QUEUE, 0, -1)}
    mine = {tid: job for host, tid, job in read_starts(live.marks) if host == victim.hostname}
    in_flight = {job for tid, job in mine.items() if tid in unacked}
    return {"killed": victim.name, "at": at, "in_flight": in_flight, "held": unacked | queued}


def task_id(raw: str) -> str:
    """The task id of a message as kombu's Redis transport keeps it: in the queue, the
    message; unacknowledged, [message, exchange, routing key]."""
    data = json.loads(raw)
    message = data[0] if isinstance(data, list) else data
    return str(message["headers"]["id"])


def read_starts(marks: Any) -> list[tuple[str, str, str]]:
    """(worker hostname, task id, job) of every start of a task, in order."""
    starts = []
    for mark in marks.lrange("starts", 0, -1):
        host, tid, job = mark.split(" ", 2)
        starts.append((host, tid, job))
    return starts


A = [WorkerSpec(f"a{i}", 8) for i in range(1, 5)]
CONFIGS = {
    "A": Config("A", A),
    "B": Config("B", [WorkerSpec("b", 32)]),
    "kill": Config("kill", A, acks_late=True, hook=kill_one),
}
SCENARIOS = {
    s.name: s
    for s in [
        Scenario("sliding", lambda: LimitServer([SlidingWindow(int(RATE), 1.0)], latency=LATENCY)),
        Scenario(
            "bucket",
            lambda: LimitServer([TokenBucket(RATE, 10)], latency=LATENCY, headers="openai"),
        ),
    ]
}


# -- processes --------------------------------------------------------------------------------


class RedisServer:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        import redis

        self.client = redis.Redis(port=self.port)
        end = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > end:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.01)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait()


class Fleet:
    """The worker processes of one run, each logging errors to its own file."""

    def __init__(self, specs: list[WorkerSpec], env: dict[str, str], logs: Path) -> None:
        self.specs = specs
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for spec in specs:
            with open(logs / f"{spec.name}.log", "wb") as log:
                self.procs[spec.name] = subprocess.Popen(
                    [
                        *(sys.executable, "-m", "celery", "-A", "benchmarks.celery_bench_app"),
                        *("worker", "--pool", "threads", "--concurrency", str(spec.concurrency)),
                        *("-n", spec.hostname, "--without-gossip", "--without-mingle"),
                        *("--without-heartbeat", "--loglevel", "ERROR"),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )

    def wait_ready(self, app: Any, timeout: float = 60.0) -> None:
        """Until every worker has answered a ping: their start-up is not timed."""
        wanted = {s.hostname for s in self.specs}
        answered: set[str] = set()
        end = time.monotonic() + timeout
        while not wanted <= answered:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"workers did not start ({dead or 'timeout'}): {self.tail()}")
            for reply in app.control.ping(destination=sorted(wanted - answered), timeout=0.5):
                answered.update(reply)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: each closes its client
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def tail(self) -> str:
        text = " | ".join(
            (self.logs / f"{s.name}.log").read_text(errors="replace").strip()[-400:]
            for s in self.specs
        )
        return " ".join(text.split())


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Result:
    config: Config
    scenario: Scenario
    jobs: int
    wall: float = 0.0
    n429: int = 0
    requests: int = 0
    lost: dict[str, str] = field(default_factory=dict)  # job -> what became of it
    paid_twice: dict[str, int] = field(default_factory=dict)  # job -> accepted beyond one
    max_in_flight: int = 0
    started: Counter[str] = field(default_factory=Counter)  # job -> times its task started
    task_ids: dict[str, str] = field(default_factory=dict)  # job -> its task's id
    notes: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ideal(self) -> float:
        return self.jobs / RATE


@dataclass
class Bench:
    """What every run shares: the redis-server, the app (as this process sends tasks and reads
    results with it), its task, and where the workers log."""

    redis: RedisServer
    app: Any
    ask: Any
    logs: Path


def run(bench: Bench, config: Config, scenario: Scenario, n: int) -> Result:
    """One configuration against a fresh server; clean Redis before and after."""
    redis_server = bench.redis
    redis_server.client.flushall()
    result = Result(config, scenario, n)
    contents = [f"{config.name}-{scenario.name}-{i}" for i in range(n)]  # under 40 characters
    with scenario.server() as server:
        env = {
            **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
            "BENCH_BROKER": redis_server.url(0),
            "BENCH_BACKEND": redis_server.url(1),
            "BENCH_MARKS": redis_server.url(2),
            "BENCH_BASE_URL": server.base_url,
            "BENCH_ACKS_LATE": "1" if config.acks_late else "0",
            "BENCH_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "COMETAPI_KEY": KEY,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        fleet = Fleet(config.workers, env, bench.logs)
        try:
            fleet.wait_ready(bench.app)
            import redis

            broker: Any = redis.Redis.from_url(redis_server.url(0), decode_responses=True)
            marks: Any = redis.Redis.from_url(redis_server.url(2), decode_responses=True)
            t0 = time.monotonic()
            sent = [bench.ask.apply_async((c,)) for c in contents]
            result.task_ids = {c: r.id for c, r in zip(contents, sent)}
            done = threading.Event()
            if config.hook is not None:
                live = Live(fleet, server, broker, marks, t0)
                watch = threading.Thread(
                    target=_call_hook,
                    args=(config.hook, live, config.hook_at * n, done, result.notes),
                    daemon=True,
                )
                watch.start()
            budget = 3 * n / RATE + 60 + (3 * VISIBILITY_TIMEOUT if config.acks_late else 0)
            # Acknowledged late, a message is in the broker until its result is stored: none
            # left there, twice a second apart, and the missing results will never come.
            drained = (lambda: _drained(broker)) if config.acks_late else None
            last = _collect(sent, contents, t0 + budget, result, drained)
            done.set()
            result.wall = last - t0
            result.started = Counter(job for _, _, job in read_starts(marks))
            broker.close()
            marks.close()
        finally:
            fleet.stop()
        stats = server.stats()
        accepted = Counter(r.key for r in server.records if r.status == 200)
    result.requests = stats.requests
    result.n429 = stats.statuses.get(429, 0)
    result.max_in_flight = stats.max_in_flight
    result.paid_twice = {k: c - 1 for k, c in accepted.items() if c > 1}
    redis_server.client.flushall()
    return result


def _call_hook(
    hook: Hook, live: Live, accepted: float, done: threading.Event, notes: dict[str, Any]
) -> None:
    while not done.is_set():
        if live.server.stats().statuses.get(200, 0) >= accepted:
            notes.update(hook(live))
            return
        time.sleep(0.02)


def _drained(broker: Any) -> bool:
    for check in range(2):
        if broker.llen(QUEUE) or broker.hlen(UNACKED):
            return False
        if not check:
            time.sleep(1.0)
    return True


def _collect(
    sent: list[Any],
    contents: list[str],
    deadline: float,
    result: Result,
    drained: Callable[[], bool] | None,
) -> float:
    """Wait for every result until the deadline, or until `drained` says no more can come;
    note the lost ones. Returns the time the last result arrived (the results are awaited in
    order: the latest arrival is the last)."""
    from celery.exceptions import TimeoutError as ResultTimeout

    last = time.monotonic()
    for r, content in zip(sent, contents):
        while True:
            left = max(0.01, deadline - time.monotonic())
            try:
                value = r.get(timeout=min(left, 1.0) if drained else left, propagate=False)
                break
            except ResultTimeout:
                if drained is not None and time.monotonic() < deadline and not drained():
                    continue
                deadline = time.monotonic()  # the results still to read are there, or never
                value = ResultTimeout
                break
        if value is ResultTimeout:
            result.lost[content] = f"no result ({r.state})"
            continue
        last = time.monotonic()
        if not r.successful():
            result.lost[content] = f"{r.state}: {value!r}"[:200]
        elif not isinstance(value, dict) or value.get("answer") != f"ok: {content}":
            result.lost[content] = f"wrong answer: {value!r}"[:200]
        r.forget()
    return last


# -- printing -----------------------------------------------------------------------------------


def extra(result: Result) -> str:
    first = next(iter(result.lost.items()), None)
    text = f"first lost {first[0]}: {first[1]}" if first else ""
    kill = kill_notes(result)
    return f"{kill}; {text}" if kill and text else kill or text


def kill_notes(result: Result) -> str:
    notes = result.notes
    if result.config.hook is None:
        return ""
    if "killed" not in notes:
        return "no kill (the run ended first)"
    in_flight: set[str] = notes["in_flight"]

    def among(jobs: set[str]) -> str:
        return "all among them" if jobs <= in_flight else f"{len(jobs - in_flight)} not among them"

    ran_twice = {job for job, times in result.started.items() if times > 1}
    text = (
        f"killed {notes['killed']} at {notes['at']:.1f}s with {len(in_flight)} in flight; "
        f"ran twice {len(ran_twice)}, {among(ran_twice)}; "
        f"paid twice {among(set(result.paid_twice))}"
    )
    # Lost without a trace: never started, and neither queued nor unacknowledged after the
    # kill: taken from the queue by the killed worker before it recorded it as unacknowledged.
    vanished = [
        job
        for job in result.lost
        if not result.started[job] and result.task_ids.get(job) not in notes["held"]
    ]
    if vanished:
        text += f"; lost {len(vanished)} never started and gone from the broker at the kill"
    return text


def row(result: Result) -> list[str]:
    if result.error:
        return [result.config.name, result.scenario.name] + ["-"] * 7 + [result.error]
    n = result.jobs
    return [
        result.config.name,
        result.scenario.name,
        f"{result.wall:.2f}",
        f"{result.wall / result.ideal:.2f}x",
        f"{result.n429 / n:.1%}",
        str(len(result.lost)),
        f"{result.requests / n:.2f}",
        str(sum(result.paid_twice.values())),
        str(result.max_in_flight),
        extra(result),
    ]


HEAD = ["config", "scenario", "wall s", "/ideal", "429s/jobs", "lost", "req/job", "paid 2x"]
HEAD += ["in flight", "extra"]
WIDTHS = [6, 8, 7, 6, 9, 5, 7, 7, 9, 0]


def line(cells: list[str]) -> str:
    return "  ".join(
        c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, WIDTHS))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="comet_sync on Celery workers, A vs B.")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per run (ideal: N / 50 s)")
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args()
    scenarios, configs = args.only.split(","), args.configs.split(",")
    unknown = (set(scenarios) - set(SCENARIOS)) | (set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown scenario or configuration: {', '.join(sorted(unknown))}")
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    try:
        import celery  # noqa: F401
    except ImportError:
        sys.exit("Celery is not installed (pip install -e '.[bench]')")

    redis_server = RedisServer()
    # Read by the app module as this process imports it (to send tasks and read results).
    os.environ.update(
        BENCH_BROKER=redis_server.url(0),
        BENCH_BACKEND=redis_server.url(1),
        BENCH_MARKS=redis_server.url(2),
    )
    bench_app = importlib.import_module("benchmarks.celery_bench_app")
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="celery-bench-") as logs:
            bench = Bench(redis_server, bench_app.app, bench_app.ask, Path(logs))
            print(line(HEAD), flush=True)
            plan = [(c, s) for s in scenarios for c in ("A", "B") if c in configs]
            if "kill" in configs:
                plan.append(("kill", scenarios[0]))
            for c, s in plan:
                config, scenario = CONFIGS[c], SCENARIOS[s]
                try:
                    result = run(bench, config, scenario, args.jobs)
                except Exception as exc:
                    result = Result(config, scenario, args.jobs)
                    result.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                results.append(result)
                print(line(row(result)), flush=True)
                if c == "B":
                    ratio = a_over_b(results, scenario.name)
                    if ratio:
                        print(f"{scenario.name}: A's wall / B's wall = {ratio}", flush=True)
    finally:
        redis_server.stop()
    if args.markdown:
        print()
        print(
            "| configuration | scenario | wall ÷ ideal | 429s ÷ jobs | lost | requests ÷ jobs "
            "| paid twice | max in flight | notes |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for result in results:
            cells = row(result)
            del cells[2]  # wall in seconds: the ratio says it
            print("| " + " | ".join(cells) + " |")
        for s in scenarios:
            ratio = a_over_b(results, s)
            if ratio:
                print(f"| A ÷ B | {s} | {ratio} | | | | | | |")


def a_over_b(results: list[Result], scenario: str) -> str:
    walls = {r.config.name: r.wall for r in results if r.scenario.name == scenario and not r.error}
    if "A" not in walls or "B" not in walls or not walls["B"]:
        return ""
    return f"{walls['A'] / walls['B']:.2f}x"


if __name__ == "__main__":
    main()
