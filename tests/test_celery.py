"""comet_sync.contrib.celery with real parts: two real ``celery worker`` processes (prefork with
2 children, and a threads pool) on a real redis-server broker, calling the fake server running
in this process. The app they run is ``tests/celery_app.py``; the last test runs a worker of
``examples/celery_app`` (the example Django project) the same way.

The workers start once for the module; each test scripts the fake server, sends tasks and
reads their state and results from the Redis result store. The pure rules (the budget, when to
requeue) are checked first, on errors from real calls with fake time.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("celery")

from comet_sync import (
    APIError,
    APITimeoutError,
    BadRequestError,
    CometClient,
    RateLimitError,
)
from comet_sync.contrib.celery import CometTask, requeue_after, task_budget
from comet_sync.testing import FakeCometServer

from .conftest import SECRET, user
from .redis_process import RedisProcess, require_redis_server

ROOT = Path(__file__).resolve().parent.parent
# The workers' shared cap on requests in flight (RedisLimiter max_concurrency), and their slots.
SHARED_CAP = 2
PREFORK_CHILDREN = 2
THREADS = 4
# The shared slots' lease: a killed process's slots come back after it (the batch test kills
# one while it holds some).
LEASE_TTL = 1.5


# -- the rules, without workers ----------------------------------------------------------------


def test_the_budget_ends_a_margin_before_the_tighter_limit() -> None:
    assert task_budget(None, None) is None
    assert task_budget(60, None) == 59.0
    assert task_budget(None, 30) == 29.0
    assert task_budget(60, 30) == 29.0
    # A short limit keeps four fifths of itself: the margin is at most a fifth.
    assert task_budget(2.5, None) == 2.0
    assert task_budget(10, None, margin=3) == 8.0


def _error(make_client: Callable[..., CometClient]) -> APIError:
    client = make_client(max_wait=5.0)
    with pytest.raises(APIError) as caught:
        client.chat.completions.create(model="m", messages=user("hi"))
    return caught.value


def test_a_server_wait_longer_than_max_wait_requeues_with_jitter_upward(
    server: FakeCometServer, make_client: Callable[..., CometClient]
) -> None:
    server.fail(429, headers={"Retry-After": "10"})
    exc = _error(make_client)
    assert isinstance(exc, RateLimitError) and exc.attempts == 1  # not slept in the call
    assert requeue_after(exc, max_wait=5.0, left=None, random=lambda: 0.0) == 10.0
    assert requeue_after(exc, max_wait=5.0, left=None, random=lambda: 0.5) == 10.5
    # A wait the client sleeps itself is not requeued: one layer per wait.
    assert requeue_after(exc, max_wait=10.0, left=None) is None
    # ... unless the task has no time left for it.
    assert requeue_after(exc, max_wait=10.0, left=8.0, random=lambda: 0.0) == 10.0


def test_permanent_errors_and_failures_without_a_server_wait_are_not_requeued(
    server: FakeCometServer, make_client: Callable[..., CometClient]
) -> None:
    server.fail(400)
    assert requeue_after(_error(make_client), max_wait=1.0, left=None) is None
    # A dropped connection, after the client's own retries: no wait was asked for.
    server.reset_next(times=6)
    assert requeue_after(_error(make_client), max_wait=1.0, left=None) is None
    # Spent quota: a 429 that no wait heals, even with a Retry-After.
    server.fail(429, code="insufficient_quota", headers={"Retry-After": "60"})
    assert requeue_after(_error(make_client), max_wait=1.0, left=None) is None


def test_celery_autoretry_on_top_is_refused() -> None:
    from celery import Celery

    app = Celery("refuses", set_as_current=False)

    with pytest.raises(TypeError, match="autoretry_for"):

        @app.task(base=CometTask, bind=True, autoretry_for=(Exception,), shared=False)
        def twice(self: Any) -> None: ...

        twice.name  # noqa: B018  (a lazy app builds the task class on first use)


def test_a_celery_batch_with_wrong_arguments_sends_nothing_and_names_them(
    server: FakeCometServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from celery import Celery

    from comet_sync import InvalidArgumentError, _cli
    from comet_sync.contrib.celery import run_batch_on, setup

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _batch_input(src, 3, "w")

    def refused(app: Any) -> InvalidArgumentError:
        with pytest.raises(InvalidArgumentError) as caught:
            run_batch_on(app, str(src), str(out))
        return caught.value

    # A module:app that does not import.
    assert _cli.main(["batch", str(src), "-o", str(out), "--celery", "no_such_module:app"]) == 2
    assert "--celery: cannot import no_such_module" in capsys.readouterr().err
    # An app whose module never called setup(app): its workers have no chunk task.
    bare = Celery("bare", set_as_current=False, broker="redis://127.0.0.1:1/0")
    error = refused(bare)
    assert error.argument == "app" and "setup(app)" in str(error)
    # A broker that is not Redis, and no Redis given for the run's state.
    amqp = Celery("amqp", set_as_current=False, broker="amqp://127.0.0.1:1//")
    setup(amqp, redis=False)
    assert refused(amqp).argument == "redis"
    # A Redis that does not answer.
    gone = Celery("gone", set_as_current=False, broker="redis://127.0.0.1:1/0")
    setup(gone, redis=False)
    error = refused(gone)
    assert error.argument == "--celery" and "cannot reach the app's Redis" in str(error)
    # The client's own limits are the workers' settings with --celery.
    with pytest.raises(SystemExit) as usage:
        _cli.main(["batch", str(src), "-o", str(out), "--celery", "x:app", "--concurrency", "4"])
    assert usage.value.code == 2
    assert "--concurrency does not go with --celery" in capsys.readouterr().err
    # Nothing was written, nothing sent.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
    assert server.received == []
    setup(gone, redis=False)


def test_outside_a_worker_client_refuses_and_eager_mode_reads_django_settings(
    server: FakeCometServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("django")
    from celery import Celery

    from comet_sync.contrib.celery import client, setup

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.djangoproj.settings")
    app = Celery("eager", set_as_current=False)
    app.conf.comet_sync = {"max_wait": 2.0}

    @app.task(base=CometTask, bind=True, shared=False, soft_time_limit=10)
    def ask(self: Any, text: str) -> Any:
        reply = client().chat.completions.create(model="m", messages=user(text))
        return reply.choices[0].message.content

    setup(app, base_url=server.base_url, redis=False)
    try:
        # This test process is no worker: no client here...
        with pytest.raises(RuntimeError, match="Celery worker"):
            client()
        # ... but eager mode runs tasks here, so it builds one.
        app.conf.task_always_eager = True
        built = client()
        assert built.config.max_concurrency == 4  # Django's COMET_SYNC
        assert built.config.retry.max_wait == 2.0  # the Celery config wins over Django's 30
        assert built.config.base_url.startswith(server.base_url)  # setup() wins over both
        assert ask.delay("hi").get() == "echo: hi"
        (request,) = server.received
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["authorization"] == "Bearer django-test-key-0123456789"  # Django's key
    finally:
        setup(app, redis=False)  # closes the client built here


def test_the_example_projects_task_answers(
    server: FakeCometServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("django")
    from comet_sync.contrib.celery import setup
    from comet_sync.contrib.celery._worker import is_set_up

    # Importing the project would name its own settings for this process unless some are named
    # (the Django tests' are, so that this test sees the same whatever runs before it).
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.djangoproj.settings")
    from examples.celery_app import tasks

    # Eager (in this process), without its Redis: the example's own task and setup. (A real
    # worker of the whole project, views included, is the last test of this module.)
    assert is_set_up(tasks.app)
    tasks.app.conf.task_always_eager = True
    setup(tasks.app, api_key=SECRET, base_url=server.base_url, redis=False)
    try:
        assert tasks.ask.delay("hi").get() == "echo: hi"
        (request,) = server.received  # the task's client sent it
        assert request.body["messages"][0]["content"] == "hi"
    finally:
        tasks.app.conf.task_always_eager = False
        setup(tasks.app, redis=False)  # closes the client built here


# -- real workers -----------------------------------------------------------------------------


class Workers:
    def __init__(
        self,
        app: Any,
        server: FakeCometServer,
        procs: list[subprocess.Popen[bytes]],
        redis_url: str,
    ):
        self.app = app
        self.server = server
        self.procs = procs
        self.redis_url = redis_url  # the broker's Redis, database 0


def _worker(pool: str, concurrency: int, name: str, queues: str, env: dict[str, str]) -> Any:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "-Q",
            queues,
            "-O",
            "fair",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "ERROR",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    require_redis_server()
    redis = RedisProcess()
    server = FakeCometServer().start()
    settings = {
        "COMET_TEST_BROKER": redis.url,
        "COMET_TEST_BACKEND": redis.url[: -len("0")] + "1",
        "COMET_TEST_BASE_URL": server.base_url,
        "COMET_TEST_SHARED_CAP": str(SHARED_CAP),
        "COMET_TEST_LEASE_TTL": str(LEASE_TTL),
    }
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        **settings,
        "COMETAPI_KEY": SECRET,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)  # read by tests.celery_app when this process imports it
    sys.modules.pop("tests.celery_app", None)
    from tests import celery_app

    procs = [
        _worker("prefork", PREFORK_CHILDREN, "pre", "celery,prefork", env),
        _worker("threads", THREADS, "thr", "celery,threads", env),
    ]
    try:
        end = time.monotonic() + 30
        while len(celery_app.app.control.ping(timeout=0.3)) < len(procs):
            if time.monotonic() > end or any(p.poll() is not None for p in procs):
                pytest.fail("the celery workers did not start")
        yield Workers(celery_app.app, server, procs, redis.url)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)  # warm shutdown: closes each process's client
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # Results a test kept (in an exception's traceback, say) unsubscribe from Redis when
        # collected: collect them while it still answers.
        gc.collect()
        server.stop()
        redis.kill()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wait_for(result: Any, state: str, timeout: float) -> float:
    """Seconds until ``result`` reached ``state`` (polled), failing after ``timeout``."""
    start = time.monotonic()
    while result.state != state:
        if time.monotonic() - start > timeout:
            pytest.fail(f"task state {result.state}, not {state}, after {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.slow
def test_each_worker_process_has_its_own_client_and_all_share_one_cap(workers: Workers) -> None:
    from tests.celery_app import ask

    server = workers.server
    server.reset_stats()
    server.configure(latency=0.2)
    try:
        sent = [ask.delay(f"q{i}") for i in range(16)]
        results = [r.get(timeout=30) for r in sent]
    finally:
        server.configure(latency=0.0)
    assert {r["answer"] for r in results} == {f"echo: q{i}" for i in range(16)}
    prefork = [r for r in results if r["hostname"].startswith("pre@")]
    threads = [r for r in results if r["hostname"].startswith("thr@")]
    # The prefork worker's children each built their own client (after the fork)...
    assert len({r["pid"] for r in prefork}) == PREFORK_CHILDREN
    assert {p.pid for p in workers.procs}.isdisjoint(r["pid"] for r in prefork)
    # ... and the threads worker's threads share one, in the worker's own process.
    assert len({r["pid"] for r in threads}) == 1
    assert len({r["client"] for r in threads}) == 1
    assert len({r["thread"] for r in threads}) > 1
    # Six slots across two workers, one cap of two in flight on Redis, counted at the server.
    assert server.stats().max_in_flight == SHARED_CAP


@pytest.mark.slow
def test_a_pace_one_worker_found_paces_the_others_from_their_first_request(
    workers: Workers,
) -> None:
    """The threads worker finds a pace from the server's 429s (20 requests/s); the prefork
    worker's children, which have not sent to that model, send at that pace from their first
    request: the pace is in Redis, and their requests reach the server spaced by it.

    (The value found is the finder's business, tested exactly elsewhere: on the 3.9 CI run,
    after the module's earlier tests, 60 tasks found none once and 161/s once.)"""
    import redis

    from comet_sync.contrib.celery._worker import redis_location
    from tests.celery_app import ask

    # A model of its own: what earlier tests taught the workers about "m" stays in their lanes.
    model = "shared-pace-model"
    url, namespace = redis_location(workers.app)
    server = workers.server
    server.reset_stats()
    server.configure(rps=20, burst=4)
    try:
        pace = 0.0
        with redis.Redis.from_url(url) as shared:
            for round_ in range(4):  # until the threads worker has found one
                first = [
                    ask.apply_async((f"t{round_}-{i}", model), queue="threads") for i in range(30)
                ]
                assert all(r.get(timeout=30)["hostname"].startswith("thr@") for r in first)
                pace = float(shared.get(f"{namespace}:pace:{model}") or 0)
                if pace:
                    break
        assert pace > 0  # found, and shared
        then = [ask.apply_async((f"p{i}", model), queue="prefork") for i in range(6)]
        assert all(r.get(timeout=30)["hostname"].startswith("pre@") for r in then)
        sent = sorted(
            r.started
            for r in server.received
            if r.body["messages"][0]["content"] in {f"p{i}" for i in range(6)}
            and r.status is not None
        )
        assert len(sent) >= 6
        # Spaced by the shared pace (a GCRA without burst, on Redis's clock; a little less
        # at the server for the way there). Unpaced, two children send at wire speed.
        gaps = [b - a for a, b in zip(sent, sent[1:])]
        assert min(gaps) >= 0.7 / pace, (pace, gaps)
    finally:
        server.configure(rps=None, burst=None)


@pytest.mark.slow
def test_a_forked_child_builds_its_own_client(workers: Workers) -> None:
    from tests.celery_app import fork_check

    result = fork_check.apply_async(queue="prefork").get(timeout=30)
    assert result["exit"] == 0, "3: the child got its parent's client; 4: its call failed"


@pytest.mark.slow
def test_a_long_retry_after_requeues_the_task_instead_of_sleeping_in_it(
    workers: Workers,
) -> None:
    from tests.celery_app import ask

    server = workers.server
    server.reset_stats()
    wait = 3.0  # the workers' max_wait is 1 s
    server.fail(429, headers={"Retry-After": f"{wait:g}"})
    result = ask.delay("later")
    # The worker gave the task back at once, not after sleeping the server's wait...
    assert _wait_for(result, "RETRY", timeout=wait) < wait
    value = result.get(timeout=30)
    assert value["retries"] == 1 and value["answer"] == "echo: later"
    # ... and it was sent again only once that wait had passed (the countdown).
    first, second = server.received[-2:]
    assert (first.status, second.status) == (429, 200)
    assert second.started - first.started >= wait
    assert server.stats().requests == 2


@pytest.mark.slow
def test_a_permanent_error_fails_the_task_at_once(workers: Workers) -> None:
    from tests.celery_app import ask

    server = workers.server
    server.reset_stats()
    server.fail(400)
    result = ask.delay("bad")
    with pytest.raises(BadRequestError):
        result.get(timeout=30)
    assert result.state == "FAILURE"
    assert server.stats().requests == 1


@pytest.mark.slow
def test_the_soft_time_limit_bounds_the_call(workers: Workers) -> None:
    from tests.celery_app import ask

    server = workers.server
    server.reset_stats()
    soft = 2.5  # the calls' budget: 2.0 s
    server.delay_next(5 * soft)
    start = time.monotonic()
    # Prefork: the pool that enforces soft_time_limit (raising SoftTimeLimitExceeded).
    result = ask.apply_async(("slow",), soft_time_limit=soft, queue="prefork")
    with pytest.raises(APITimeoutError):  # ours, not Celery's SoftTimeLimitExceeded
        result.get(timeout=30)
    assert time.monotonic() - start < 5 * soft
    assert server.stats().requests == 1


# -- batches on the workers ---------------------------------------------------------------------


def _batch_input(path: Path, count: int, tag: str) -> None:
    """``count`` lines, each with a prompt of its own, so the server counts requests per line."""
    with path.open("w") as f:
        for i in range(count):
            job = {"custom_id": f"{tag}{i}", "model": "m", "messages": user(f"{tag} {i}")}
            f.write(json.dumps(job) + "\n")


def _sent_per_prompt(server: FakeCometServer, tag: str) -> Counter[str]:
    return Counter(
        str(r.body["messages"][0]["content"])
        for r in server.received
        if isinstance(r.body, dict) and str(r.body["messages"][0]["content"]).startswith(tag)
    )


def _answers(out: Path) -> Counter[str]:
    """custom_id -> how many answer lines the output holds for it (checked to be the echo)."""
    seen: Counter[str] = Counter()
    for raw in out.read_text().splitlines():
        line = json.loads(raw)
        assert line.get("error") is None, line
        content = line["response"]["choices"][0]["message"]["content"]
        tag, number = line["custom_id"][0], line["custom_id"][1:]
        assert content == f"echo: {tag} {number}"
        seen[line["custom_id"]] += 1
    return seen


class _Watchdog:
    """Interrupts the batch running in the main thread (as Ctrl-C would) if it has not ended
    in ``seconds``: a lost chunk would otherwise hang the test instead of failing it."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        os.kill(os.getpid(), signal.SIGINT)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _chunk_runner_pid(app: Any) -> int | None:
    """The pid of a prefork child running a chunk task now (asked of the workers)."""
    from comet_sync.contrib.celery._chunk import CHUNK_TASK

    active = app.control.inspect(timeout=1.0, limit=2).active() or {}
    for host, tasks in active.items():
        if host.startswith("pre@"):
            for task in tasks:
                if task.get("name") == CHUNK_TASK and task.get("worker_pid"):
                    return int(task["worker_pid"])
    return None


@pytest.mark.slow
def test_a_batch_on_two_workers_loses_nothing_when_one_process_is_killed(
    workers: Workers, tmp_path: Path
) -> None:
    from comet_sync.contrib.celery import run_batch_on

    server = workers.server
    count = 2000
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _batch_input(src, count, "k")
    killed: dict[str, Any] = {}

    def kill_mid_run() -> None:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if server.stats().requests >= count // 4:
                pid = _chunk_runner_pid(workers.app)
                if pid is not None:
                    killed["at"] = time.monotonic()
                    killed["done"] = server.stats().requests
                    os.kill(pid, signal.SIGKILL)  # a prefork child, mid-chunk
                    return
            time.sleep(0.02)

    server.reset_stats()
    server.configure(latency=0.002)
    killer = threading.Thread(target=kill_mid_run, daemon=True)
    try:
        with _Watchdog(45) as watchdog:
            killer.start()
            code = run_batch_on(workers.app, str(src), str(out), chunk_size=50, grace=2)
        killer.join(timeout=5)
    finally:
        server.configure(latency=0.0)
    assert not watchdog.fired, "the batch did not end: a chunk was lost"
    assert "at" in killed and killed["done"] < count, "no chunk runner was killed mid-run"
    assert code == 0
    # Every line answered, exactly once, in input order.
    answers = _answers(out)
    assert answers == Counter({f"k{i}": 1 for i in range(count)})
    ids = [json.loads(raw)["custom_id"] for raw in out.read_text().splitlines()]
    assert ids == [f"k{i}" for i in range(count)]
    # Sent again: only what the killed process had on the wire (a shared cap of SHARED_CAP
    # in flight across every worker), each first sent before the kill.
    sent = _sent_per_prompt(server, "k")
    again = {prompt for prompt, n in sent.items() if n > 1}
    assert sum(sent[p] - 1 for p in again) <= SHARED_CAP, sent.most_common(5)
    # The run ended whole: its keys are gone from Redis.
    assert _run_keys(out) == []
    firsts = {}
    for r in server.received:
        if isinstance(r.body, dict):
            firsts.setdefault(str(r.body["messages"][0]["content"]), r.started)
    assert all(firsts[p] < killed["at"] for p in again)


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["COMET_TEST_BROKER"])


def _run_keys(out: Path) -> list[bytes]:
    """The Redis keys of the run writing ``out`` (its id is kept beside it)."""
    run = json.loads(Path(f"{out}.celery").read_text())["run"]
    return sorted(_redis().keys(f"*:batch:{run}:*"))


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _interrupt_when(out: Path, lines: int, timeout: float = 30) -> threading.Thread:
    """SIGINT this process (Ctrl-C, to the batch in the main thread) once ``out`` has
    ``lines`` lines: written only while the batch, and so its Ctrl-C handler, runs."""

    def wait_then_interrupt() -> None:
        end = time.monotonic() + timeout
        while _lines(out) < lines and time.monotonic() < end:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_coordinator_stopped_by_ctrl_c_or_killed_is_resumed_without_paying_twice(
    workers: Workers, tmp_path: Path
) -> None:
    from comet_sync.contrib.celery import run_batch_on

    server = workers.server
    count = 1000
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _batch_input(src, count, "r")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    server.reset_stats()
    server.configure(latency=0.002)
    try:
        # 1. Ctrl-C: the chunks stop sending; what finished is written; exit 130.
        interrupter = _interrupt_when(out, 150)
        code = run_batch_on(workers.app, str(src), str(out), chunk_size=20, grace=5)
        interrupter.join()
        assert code == 130
        stopped_at = server.stats().requests
        time.sleep(0.3)  # the chunks still queued arrive, and send nothing
        assert server.stats().requests == stopped_at
        first = _lines(out)
        assert first == stopped_at  # every line sent before the stop was written
        # Redis keeps that each written line is done, not its answer (the output has it).
        (results,) = [k for k in _run_keys(out) if k.endswith(b":results")]
        values = _redis().hgetall(results).values()
        assert len(values) == first and set(values) == {b"w"}
        # 2. A coordinator (the command) SIGKILLed: its chunks run on without it.
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "comet_sync", "batch", "-o", str(out), "--resume"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 30
        while _lines(out) < first + 150:
            assert time.monotonic() < end and coordinator.poll() is None
            time.sleep(0.01)
        coordinator.kill()
        coordinator.wait()
        written = _lines(out)
        # 3. Resumed to the end: takes what the workers finished while no one was writing.
        with _Watchdog(60) as watchdog:
            code = run_batch_on(workers.app, None, str(out), resume=True, grace=2)
    finally:
        server.configure(latency=0.0)
    assert not watchdog.fired
    assert code == 0
    assert written < count  # the last resume had lines to take from Redis, or to send
    assert _answers(out) == Counter({f"r{i}": 1 for i in range(count)})
    # No resume sent what had finished: a Ctrl-C waits for the chunks' calls on the wire, and
    # a resumed coordinator for its dead predecessor's; nothing is sent twice.
    sent = _sent_per_prompt(server, "r")
    assert len(sent) == count
    assert sum(n - 1 for n in sent.values()) == 0, sent.most_common(5)


@pytest.mark.slow
def test_the_example_django_project_answers_through_its_views_from_a_real_worker(
    workers: Workers,
) -> None:
    """examples/celery_app as shipped: a threads worker of the project (on the module's
    redis-server, in a database of its own so that the test workers take none of its tasks)
    and ``python -m examples.celery_app``, whose Django test client posts the question to
    /ask and reads the answer from /answer/<id>: the worker's task called the fake server."""
    pytest.importorskip("django")
    import redis

    server = workers.server
    broker = workers.redis_url[: -len("0")] + "2"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "CELERY_BROKER_URL": broker,
        "COMETAPI_KEY": SECRET,
        "COMETAPI_BASE_URL": server.base_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }

    def ask(question: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "examples.celery_app", question],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    server.reset_stats()
    # The command line its docstring gives, on a threads pool (one process: quick to start);
    # the question waits on the broker until the worker is up.
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "examples.celery_app", "worker"),
            *("--pool", "threads", "--concurrency", "2", "--loglevel", "ERROR"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        answered = ask("what is Celery")
        server.fail(400)  # a permanent error: the task fails, and the answer view says so
        failed = ask("a bad request")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip() == "echo: what is Celery"
    assert failed.returncode == 1 and failed.stderr.startswith("FAILURE: "), failed.stderr
    assert "BadRequestError" in failed.stderr and "400 from /chat/completions" in failed.stderr
    # Both were sent by the worker's client, once each, with the key from the environment
    # (Django's COMETAPI_KEY) ...
    first, second = server.received
    assert first.body["messages"][0]["content"] == "what is Celery"
    assert (first.status, second.status) == (200, 400)
    assert {k.lower(): v for k, v in first.headers.items()}["authorization"] == f"Bearer {SECRET}"
    # ... through the limit the project's workers share on the broker's Redis.
    with redis.Redis.from_url(broker) as shared:
        assert shared.keys("comet_sync:celery_app:*")
