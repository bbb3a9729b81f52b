"""comet_sync against rate limiters it did not design, beside openai-python and the guide's recipe.

    .venv/bin/python benchmarks/ratelimit.py [--only a,b] [--clients comet,told,openai,...]
        [--scale F] [--markdown] [--plot DIR]

The servers (benchmarks/servers.py) behave like real APIs: sliding and fixed windows, token
buckets of requests or of tokens charged at admission (prompt + max_tokens), a concurrency cap,
rate headers in OpenAI's, Anthropic's or the IETF draft's style, Retry-After rounded UP to whole
seconds, and failures that are not about rate at all. Every client run gets a fresh server in
this process; latency is U(20, 60) ms unless said; prompts are short and distinct.

Clients: ``comet`` comet_sync's defaults (not told the limit; map over the jobs); ``told``
comet_sync told the limit (rpm/tpm/max_concurrency/max_retries as the scenario says);
``openai`` openai-python's defaults (max_retries=2) on 32 threads; ``openai10`` the same with
max_retries=10; ``guide`` CometAPI's guide recipe: requests + Semaphore(5) on 32 threads,
retrying 429/500/503/504/524 after min(30, 2^n) + U(0, 1) s, at most 5 attempts. For coldstart
every pool has 64 threads. openai and openai10 run first in each scenario, so the rows that
compare with them can be printed as soon as they are measured.

Scenarios (jobs; ideal time; told):
  sliding      SlidingWindow(50/1 s), openai headers, Retry-After s; 300; 6.0 s; rpm 3000
  bucket       TokenBucket(40/s, burst 10), no headers, retry-after-ms; 300; 7.5 s; rpm 2400
  fixed        FixedWindow(40/1 s), openai headers, Retry-After s; 300; 7.5 s; rpm 2400
  tokens       TokenRate(15000 tok/s, burst 15000), each job 500 tokens by the server's count
               (prompt/4 + max_tokens), no headers; 300; 10.0 s; tpm 900000
  anthropic    TokenBucket(40/s, burst 40), anthropic headers; 300; 7.5 s; rpm 2400
  ietf         SlidingWindow(40/1 s), IETF RateLimit headers; 300; 7.5 s; rpm 2400
  concurrency  4 in flight, 100 ms latency, no headers, no Retry-After; 300; 7.5 s;
               comet max_concurrency=32; told max_concurrency=4
  drop         TokenBucket(60, 6) until 150 jobs succeeded, then TokenBucket(20, 2); 300;
               150/60 + 150/20 s; rpm 3600. Extra: 429s after the drop per job after it.
  outage       no limit; every request 503 for the first 3 s; 200 jobs. Extra: amplification
               (attempts during the outage / distinct jobs among them); "back": seconds from
               the outage's end to the first success; "90%": seconds from its end until 90% of
               the jobs not yet done at the end have succeeded (all clients can do 200 jobs in
               well under 2 s when healthy, so this measures how fast they resume, not speed).
  first503     each job's first attempt gets 503; 500 jobs. Extra: wall / openai's wall.
  random429    30% of requests 429 without any header (upstream saturation); 1000 jobs;
               told max_retries=10. Extra: wall / openai's wall, openai10's lost jobs.
  random503    30% of requests 503; 1000 jobs; told max_retries=10. Extra: as random429.
  twomodels    model-a TokenBucket(10, 2), model-b unlimited; 100 jobs each interleaved
               (comet clients submit() futures); ideal 10 s; told rpm={"model-a": 600}.
               Extra: model-b's wall (its last completion) / its wall run alone with the same
               client just before.
  keywide      TokenBucket(60/s, burst 8) for the key, whatever the model, no headers; 300
               jobs over three models in turn; ideal 5 s; told rpm 1200 (rpm is per model: the
               key's budget split over its three models is all a user can tell today).
  coldstart    no limit, 1.0 s latency, 400 jobs, comet max_concurrency=64; ideal 400/64 s.

Columns: wall s; wall / ideal; 429s the server sent / jobs; lost (failed) jobs; attempts the
server saw / jobs; extra. ``--scale`` multiplies the job counts (the outage stays 3 s);
``--markdown`` adds one table, a row per scenario and "wall/ideal · 429s · lost" per client
(wall in s where there is no ideal); ``--plot DIR`` saves DIR/<scenario>.png: accepted
requests/s in 0.25 s bins per client, the limit dashed, 429s as ticks below zero.

Targets: comet defaults on every limiter server <= 1.10x ideal, <= 5% 429s per job, 0 lost;
told <= 1.03x. first503: 0 lost and wall <= 1.2x openai's. random429/503: told (max_retries=10)
loses no more than openai10 and wall <= 1.2x openai's. outage: attempts during it <= 1.25x
jobs, and full rate within 2 s of its end (the "90%" figure). twomodels: model-b within 1.05x
of alone. coldstart: <= 1.5x ideal.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import requests
from servers import (
    WINDOW,
    Concurrency,
    Convention,
    DayQuota,
    FixedWindow,
    LimitServer,
    Record,
    SlidingTokens,
    SlidingWindow,
    TokenBucket,
    TokenRate,
    estimate_tokens,
)

MODEL = "gpt-4o-mini"
KEY = "bench-key-0123456789"
Job = dict[str, Any]


class NotApplicable(Exception):
    """The client cannot be given these settings (a per-model dict the library lacks)."""


@dataclass
class Outcome:
    ok: list[bool]  # per job, in job order
    done: list[float]  # per job: time.monotonic() when the client had its result


# -- clients: (base_url, jobs, settings, threads, submit) -> Outcome --------------------------


def run_comet(
    url: str, jobs: list[Job], settings: dict[str, Any], threads: int, submit: bool
) -> Outcome:
    from comet_sync import CometClient  # here, so a library mid-rewrite only fails its rows

    per_model = any(isinstance(v, dict) for v in settings.values())
    try:
        client = CometClient(api_key=KEY, base_url=url, **settings)
    except (TypeError, ValueError) as exc:  # InvalidArgumentError is a ValueError
        if per_model:
            raise NotApplicable(f"{type(exc).__name__}: {exc}") from exc
        raise
    with client:
        if submit:
            done = [0.0] * len(jobs)
            futures: list[Future[Any]] = []
            for i, job in enumerate(jobs):
                future = client.chat.completions.submit(**job)
                future.add_done_callback(lambda _, i=i: done.__setitem__(i, time.monotonic()))
                futures.append(future)
            wait(futures)
            results = [f.exception() or True for f in futures]
        else:
            results, done = [], []
            for result in client.chat.completions.map(jobs, return_exceptions=True):
                results.append(result)  # in input order: `done` is when it was yielded
                done.append(time.monotonic())
    if per_model and any(isinstance(r, (TypeError, ValueError)) for r in results):
        raise NotApplicable(next(r for r in results if isinstance(r, (TypeError, ValueError))))
    return Outcome([not isinstance(r, BaseException) for r in results], done)


def _pool(one: Callable[[Job], bool], jobs: list[Job], threads: int) -> Outcome:
    done = [0.0] * len(jobs)

    def timed(i: int) -> bool:
        ok = one(jobs[i])
        done[i] = time.monotonic()
        return ok

    with ThreadPoolExecutor(threads) as pool:
        ok = list(pool.map(timed, range(len(jobs))))
    return Outcome(ok, done)


def run_openai(
    url: str,
    jobs: list[Job],
    settings: dict[str, Any],
    threads: int,
    submit: bool,
    max_retries: int = 2,
) -> Outcome:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=url, max_retries=max_retries)

    def one(job: Job) -> bool:
        try:
            client.chat.completions.create(**job)
            return True
        except openai.OpenAIError:
            return False

    try:
        return _pool(one, jobs, threads)
    finally:
        client.close()


def run_openai10(
    url: str, jobs: list[Job], settings: dict[str, Any], threads: int, submit: bool
) -> Outcome:
    return run_openai(url, jobs, settings, threads, submit, max_retries=10)


def run_guide(
    url: str, jobs: list[Job], settings: dict[str, Any], threads: int, submit: bool
) -> Outcome:
    semaphore = threading.Semaphore(5)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))
    headers = {"Authorization": f"Bearer {KEY}"}

    def one(job: Job) -> bool:
        for attempt in range(5):
            try:
                with semaphore:
                    r = session.post(
                        url + "/chat/completions", json=job, headers=headers, timeout=60
                    )
                if r.status_code == 200:
                    return True
                if r.status_code not in (429, 500, 503, 504, 524):
                    return False
            except requests.RequestException:
                pass  # the recipe's try/except retries a dropped connection too
            if attempt < 4:
                time.sleep(min(30, 2**attempt) + random.uniform(0, 1))
        return False

    try:
        return _pool(one, jobs, threads)
    finally:
        session.close()


CLIENTS: dict[str, Callable[..., Outcome]] = {
    "openai": run_openai,  # the references first: other rows compare with them
    "openai10": run_openai10,
    "comet": run_comet,
    "told": run_comet,
    "guide": run_guide,
}

# -- scenarios ---------------------------------------------------------------------------------


@dataclass
class Run:
    scenario: Scenario
    client: str
    server: LimitServer
    jobs: list[Job]
    t0: float = 0.0
    wall: float = 0.0
    outcome: Outcome | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # drop_at, alone, ...
    error: str = ""

    @property
    def records(self) -> list[Record]:
        return self.server.records


@dataclass
class Scenario:
    name: str
    jobs: int
    server: Callable[[], LimitServer]  # a fresh one for every run
    ideal: Callable[[int], float] | None  # from the (scaled) job count
    comet: dict[str, Any] = field(default_factory=dict)
    told: dict[str, Any] = field(default_factory=dict)
    threads: int = 32
    job: Callable[[str, int], Job] | None = None
    start: Callable[[Run, threading.Event], None] | None = None  # right before the client
    extra: Callable[[Run, dict[str, Run]], str] | None = None
    limit: Callable[[Run], list[tuple[float, float]]] | None = None  # (from s, req/s) steps
    limit_label: str = "server limit"
    alone: Callable[[Job], bool] | None = None  # jobs to run alone first (twomodels)
    bare: Callable[[], LimitServer] | None = None  # the same server without headers, first

    def make_jobs(self, n: int) -> list[Job]:
        if self.job is not None:
            return [self.job(self.name, i) for i in range(n)]
        return [chat(f"{self.name}-{i}") for i in range(n)]


def chat(content: str, model: str = MODEL, **extra: Any) -> Job:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def token_job(name: str, i: int) -> Job:
    # 1600 characters of prompt (400 tokens by the server's count) + max_tokens 100 = 500.
    job = chat(f"{name}-{i} ".ljust(1600, "x"), max_tokens=100)
    assert estimate_tokens(job) == 500
    return job


def two_models_job(name: str, i: int) -> Job:
    return chat(f"{name}-{i}", model="model-a" if i % 2 == 0 else "model-b")


def three_models_job(name: str, i: int) -> Job:
    return chat(f"{name}-{i}", model=("model-a", "model-b", "model-c")[i % 3])


def flat(rate: float) -> Callable[[Run], list[tuple[float, float]]]:
    return lambda run: [(0.0, rate)]


def drop_start(run: Run, done: threading.Event) -> None:
    half = len(run.jobs) // 2

    def watch() -> None:
        while not done.is_set():
            if run.server.stats().statuses.get(200, 0) >= half:
                run.server.set_limits([TokenBucket(20, 2)])
                run.notes["drop_at"] = time.monotonic()
                return
            time.sleep(0.002)

    threading.Thread(target=watch, daemon=True).start()


def drop_extra(run: Run, runs: dict[str, Run]) -> str:
    drop_at = run.notes.get("drop_at")
    if drop_at is None:
        return "no drop"
    after = len(run.jobs) - len(run.jobs) // 2
    n429 = sum(r.status == 429 and r.arrived >= drop_at for r in run.records)
    return f"429s after drop {n429} ({n429 / after:.0%} of {after} jobs)"


def drop_limit(run: Run) -> list[tuple[float, float]]:
    steps = [(0.0, 60.0)]
    if "drop_at" in run.notes:
        steps.append((run.notes["drop_at"] - run.t0, 20.0))
    return steps


def outage_start(run: Run, done: threading.Event) -> None:
    run.server.outage(503, 3.0)


def outage_extra(run: Run, runs: dict[str, Run]) -> str:
    start, end, _ = run.server.outages[0]
    during = [r for r in run.records if start <= r.arrived < end]
    keys = {r.key for r in during}
    amp = len(during) / len(keys) if keys else 0.0
    succeeded = {r.key: r.ended for r in run.records if r.status == 200}
    last = {r.key: r.arrived for r in run.records}
    # Not done at the end: no success before it, and not abandoned before it either.
    pending = [job["messages"][-1]["content"] for job in run.jobs]
    pending = [k for k in pending if succeeded.get(k, math.inf) >= end and last.get(k, end) >= end]
    firsts = [r.arrived - end for r in run.records if r.status == 200 and r.arrived >= end]
    back = f"{min(firsts):.2f}s" if firsts else "never"
    times = sorted(succeeded[k] - end for k in pending if k in succeeded)
    need = math.ceil(0.9 * len(pending))
    t90 = f"{times[need - 1]:.2f}s" if need and len(times) >= need else "never" if need else "-"
    return f"amp {amp:.2f}x ({len(during)}/{len(keys)}), back {back}, 90% {t90}"


def vs_openai(run: Run, runs: dict[str, Run]) -> str:
    ref = runs.get("openai")
    if run.client == "openai" or ref is None or ref.error or not ref.wall:
        return ""
    return f"wall {run.wall / ref.wall:.2f}x openai's"


def random_extra(run: Run, runs: dict[str, Run]) -> str:
    ref = runs.get("openai10")
    text = vs_openai(run, runs)
    if run.client != "openai10" and ref is not None and ref.outcome is not None:
        text += f"; openai10 lost {ref.outcome.ok.count(False)}"
    return text.strip("; ")


def model_b_wall(run: Run) -> float:
    assert run.outcome is not None
    ends = [t for job, t in zip(run.jobs, run.outcome.done) if job["model"] == "model-b"]
    return max(ends) - run.t0


def two_models_extra(run: Run, runs: dict[str, Run]) -> str:
    alone = run.notes.get("alone")
    if not alone:
        return ""
    b = model_b_wall(run)
    return f"model-b {b:.2f}s / alone {alone:.2f}s = {b / alone:.2f}x"


def gaps_extra(run: Run, runs: dict[str, Run]) -> str:
    """The waits between a job's attempts: the shortest (never under what the server asked)
    and the longest (never past max_wait, 30 s)."""
    by_job: dict[str, list[float]] = {}
    for r in run.records:
        by_job.setdefault(r.key, []).append(r.arrived)
    gaps = [b - a for times in by_job.values() for a, b in zip(sorted(times), sorted(times)[1:])]
    text = vs_openai(run, runs)
    if gaps:
        text += f"; waits {min(gaps):.2f}-{max(gaps):.2f}s"
    return text.strip("; ")


def vs_bare(run: Run, runs: dict[str, Run]) -> str:
    """The same client against the same server without rate headers, measured just before."""
    bare = run.notes.get("bare")
    return f"wall {run.wall / bare:.2f}x the same without headers" if bare else ""


def server(limits: Callable[[], Any] | None = None, **options: Any) -> Callable[[], LimitServer]:
    """A server factory: the limiters are built anew for every run, so no state carries over."""
    return lambda: LimitServer(limits() if limits else None, **options)


SCENARIOS = [
    Scenario(
        "sliding",
        300,
        server(lambda: [SlidingWindow(50, 1.0)], headers="openai"),
        lambda n: n / 50,
        told={"rpm": 3000},
        limit=flat(50),
    ),
    Scenario(
        "bucket",
        300,
        server(lambda: [TokenBucket(40, 10)], retry_after="ms"),
        lambda n: n / 40,
        told={"rpm": 2400},
        limit=flat(40),
    ),
    Scenario(
        "fixed",
        300,
        server(lambda: [FixedWindow(40, 1.0)], headers="openai"),
        lambda n: n / 40,
        told={"rpm": 2400},
        limit=flat(40),
    ),
    Scenario(
        "tokens",
        300,
        server(lambda: [TokenRate(15000, 15000)]),
        lambda n: n * 500 / 15000,
        told={"tpm": 900000},
        job=token_job,
        limit=flat(30),
    ),
    Scenario(
        "anthropic",
        300,
        server(lambda: [TokenBucket(40, 40)], headers="anthropic"),
        lambda n: n / 40,
        told={"rpm": 2400},
        limit=flat(40),
    ),
    Scenario(
        "ietf",
        300,
        server(lambda: [SlidingWindow(40, 1.0)], headers="ietf"),
        lambda n: n / 40,
        told={"rpm": 2400},
        limit=flat(40),
    ),
    # Servers that count per their own window under the same header names (mock servers,
    # proxies, gateways): read as "per minute", each would make a client 15-60x slower.
    Scenario(
        "sliding-s",
        300,
        server(lambda: [SlidingWindow(50, 1.0)], headers="openai", convention=WINDOW),
        lambda n: n / 50,
        told={"rpm": 3000},
        limit=flat(50),
    ),
    Scenario(
        "fixed-s",
        300,
        server(lambda: [FixedWindow(40, 1.0)], headers="openai", convention=WINDOW),
        lambda n: n / 40,
        told={"rpm": 2400},
        limit=flat(40),
    ),
    Scenario(
        "bucket-s",
        260,
        server(lambda: [TokenBucket(20, 60)], headers="openai", convention=WINDOW),
        lambda n: max(0, n - 60) / 20,
        told={"rpm": 1200},
        limit=flat(20),
    ),
    Scenario(
        "tokens-s",
        300,
        server(
            lambda: [SlidingWindow(100, 1.0), TokenRate(15000, 15000)],
            headers="openai",
            convention=WINDOW,
        ),
        lambda n: n * 500 / 15000,
        told={"tpm": 900000},
        job=token_job,
        limit=flat(30),
    ),
    Scenario(
        "anthropic-s",
        300,
        server(lambda: [SlidingWindow(40, 1.0)], headers="anthropic", convention=WINDOW),
        lambda n: n / 40,
        told={"rpm": 2400},
        limit=flat(40),
    ),
    Scenario(
        "window10",
        300,
        server(lambda: [SlidingWindow(200, 10.0)], headers="openai", convention=WINDOW),
        lambda n: 10.0 * (math.ceil(n / 200) - 1) or n / 200,
        told={"rpm": 1200},
        limit=flat(20),
    ),
    Scenario(
        "groq",  # requests per day beside tokens per minute; an unannounced 30/s binds
        300,
        server(
            lambda: [
                DayQuota(14400),
                SlidingTokens(600000, 60.0),
                SlidingWindow(30, 1.0, announced=False),
            ],
            headers="openai",
            convention=WINDOW,
        ),
        lambda n: n / 30,
        told={"rpm": 1800},
        limit=flat(30),
    ),
    Scenario(
        "epoch",
        300,
        server(
            lambda: [SlidingWindow(50, 1.0)],
            headers="openai",
            convention=Convention(per="window", reset="epoch"),
        ),
        lambda n: n / 50,
        told={"rpm": 3000},
        limit=flat(50),
    ),
    Scenario(
        "nolimit",  # remaining and reset, no limit header
        300,
        server(
            lambda: [SlidingWindow(50, 1.0)],
            headers="openai",
            convention=Convention(per="window", send_limit=False),
        ),
        lambda n: n / 50,
        told={"rpm": 3000},
        limit=flat(50),
    ),
    Scenario(
        "reqtok",  # requests and tokens bind together, no rate headers, retry-after-ms
        300,
        server(lambda: [SlidingWindow(25, 1.0), SlidingTokens(10000, 1.0)], retry_after="ms"),
        lambda n: n / 25,
        told={"rpm": 1500, "tpm": 600000},
        job=lambda name, i: chat(f"{name}-{i} ".ljust(1536, "x"), max_tokens=16),
        limit=flat(25),
    ),
    Scenario(
        "liar",  # claims 50 while a sliding 100/s binds (remaining never near 50)
        300,
        server(
            lambda: [SlidingWindow(100, 1.0)],
            headers="openai",
            convention=Convention(per="window", claimed_limit=50),
        ),
        lambda n: n / 100,
        told={"rpm": 6000},
        limit=flat(100),
        extra=vs_bare,
        bare=server(lambda: [SlidingWindow(100, 1.0)]),
    ),
    Scenario(
        "convoy",  # each job's first two attempts: 429 with Retry-After: 6, whatever the rate
        32,
        server(first_429s=2, first_429_retry_after=6),
        None,
        told={"max_retries": 10},
        extra=gaps_extra,
    ),
    Scenario(
        "concurrency",
        300,
        server(lambda: [Concurrency(4)], latency=0.1, retry_after=None),
        lambda n: n / 4 * 0.1,
        comet={"max_concurrency": 32},
        told={"max_concurrency": 4},
        limit=flat(40),
    ),
    Scenario(
        "drop",
        300,
        server(lambda: [TokenBucket(60, 6)]),
        lambda n: n // 2 / 60 + (n - n // 2) / 20,
        told={"rpm": 3600},
        start=drop_start,
        extra=drop_extra,
        limit=drop_limit,
    ),
    Scenario("outage", 200, server(), None, start=outage_start, extra=outage_extra),
    Scenario("first503", 500, server(first_attempt_503=True), None, extra=vs_openai),
    Scenario(
        "random429",
        1000,
        server(random_429=0.3),
        None,
        told={"max_retries": 10},
        extra=random_extra,
    ),
    Scenario(
        "random503",
        1000,
        server(random_503=0.3),
        None,
        told={"max_retries": 10},
        extra=random_extra,
    ),
    Scenario(
        "twomodels",
        200,
        server(lambda: {"model-a": [TokenBucket(10, 2)]}),
        lambda n: n // 2 / 10,
        told={"rpm": {"model-a": 600}},
        job=two_models_job,
        extra=two_models_extra,
        limit=flat(10),
        limit_label="model-a's limit",
        alone=lambda job: job["model"] == "model-b",
    ),
    Scenario(
        "keywide",  # one budget for the key, whatever the model (a gateway's per-key limit)
        300,
        server(lambda: [TokenBucket(60, 8)]),
        lambda n: n / 60,
        # rpm applies to each model: a key's budget can only be told split over its models.
        told={"rpm": 1200},
        job=three_models_job,
        limit=flat(60),
    ),
    Scenario(
        "coldstart",
        400,
        server(latency=1.0),
        lambda n: max(1.0, n / 64),
        comet={"max_concurrency": 64},
        told={"max_concurrency": 64},
        threads=64,
    ),
]


def _third_party() -> list[Scenario]:
    """mocklimit (a rate-limit mock from PyPI, written by someone else) in each of its styles,
    when it is installed (the bench extra, Python 3.11+)."""
    try:
        from mocklimit_servers import PRESET_RATES, MockLimitServer, find_mocklimit, preset_ideal

        find_mocklimit()
    except (ImportError, RuntimeError):
        return []
    scenarios = []
    for name, rates in PRESET_RATES.items():
        bucket = name == "ml-bucket"  # its capacity is a burst the ideal spends first
        scenarios.append(
            Scenario(
                name,
                260 if bucket else 300,
                lambda name=name: MockLimitServer.preset(name),  # type: ignore[misc]
                preset_ideal(name, burst=bucket),
                told={"rpm": rates["rate"] * 60},
                limit=flat(rates["rate"]),
            )
        )
    return scenarios


SCENARIOS.extend(_third_party())

# -- running ---------------------------------------------------------------------------------


def settings_for(scenario: Scenario, client: str) -> dict[str, Any]:
    return {"comet": scenario.comet, "told": scenario.told}.get(client, {})


def run_once(
    scenario: Scenario, client: str, jobs: list[Job], make: Callable[[], LimitServer] | None = None
) -> Run:
    """One client against a fresh server; exceptions are the caller's."""
    with (make or scenario.server)() as srv:
        run = Run(scenario, client, srv, jobs)
        done = threading.Event()
        run.t0 = time.monotonic()
        if scenario.start is not None:
            scenario.start(run, done)
        try:
            run.outcome = CLIENTS[client](
                srv.base_url,
                jobs,
                settings_for(scenario, client),
                scenario.threads,
                scenario.alone is not None,
            )
        finally:
            run.wall = time.monotonic() - run.t0
            done.set()
    return run


def measure(scenario: Scenario, client: str, n: int) -> Run:
    jobs = scenario.make_jobs(n)
    try:
        alone = None
        if scenario.alone is not None:  # the same client with only those jobs, first
            alone = model_b_wall(run_once(scenario, client, list(filter(scenario.alone, jobs))))
        bare = None
        if scenario.bare is not None:  # the same client on the server without headers, first
            bare = run_once(scenario, client, jobs, scenario.bare).wall
        run = run_once(scenario, client, jobs)
        if alone is not None:
            run.notes["alone"] = alone
        if bare is not None:
            run.notes["bare"] = bare
        return run
    except NotApplicable as exc:
        run = Run(scenario, client, scenario.server(), jobs, error=f"n/a ({exc})")
    except Exception as exc:
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        run = Run(scenario, client, scenario.server(), jobs, error=f"error: {text}")
    return run


@dataclass
class Row:
    wall: str = "-"
    ratio: str = "-"
    r429: str = "-"
    lost: str = "-"
    attempts: str = "-"
    extra: str = ""
    cell: str = "-"  # for --markdown


def row_of(run: Run, runs: dict[str, Run]) -> Row:
    if run.error or run.outcome is None:
        return Row(extra=run.error, cell=run.error.split(" ")[0])
    n = len(run.jobs)
    ideal = run.scenario.ideal(n) if run.scenario.ideal else None
    n429 = sum(r.status == 429 for r in run.records)
    lost = run.outcome.ok.count(False)
    extra = run.scenario.extra(run, runs) if run.scenario.extra else ""
    ratio = f"{run.wall / ideal:.2f}x" if ideal else "-"
    head = ratio if ideal else f"{run.wall:.1f} s"
    return Row(
        f"{run.wall:.2f}",
        ratio,
        f"{n429 / n:.1%}",
        str(lost),
        f"{len(run.records) / n:.2f}",
        extra,
        f"{head} · {n429 / n:.0%} · {lost}",
    )


def plot(scenario: Scenario, runs: dict[str, Run], directory: str) -> None:
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = {c: r for c, r in runs.items() if not r.error and r.outcome is not None}
    if not good:
        return
    fig, ax = plt.subplots(figsize=(8, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    bin_s, peak, end = 0.25, 1.0, 1.0
    for i, (client, run) in enumerate(good.items()):
        ok = [r.arrived - run.t0 for r in run.records if r.status == 200]
        end = max(end, run.wall)
        bins = [0] * (int(run.wall / bin_s) + 1)
        for t in ok:
            bins[min(len(bins) - 1, max(0, int(t / bin_s)))] += 1
        rates = [c / bin_s for c in bins]
        peak = max(peak, *rates)
        xs = [k * bin_s for k in range(len(bins) + 1)]
        ax.step(xs, [*rates, rates[-1]], where="post", color=colors[i % 10], lw=1.3, label=client)
    gap = peak * 0.05
    limits = {c: run.scenario.limit(run) for c, run in good.items()} if scenario.limit else {}
    shared = len({tuple(s) for s in limits.values()}) == 1
    for i, (client, run) in enumerate(good.items()):
        refused = [r.arrived - run.t0 for r in run.records if r.status == 429]
        ax.plot(refused, [-(i + 1) * gap] * len(refused), "|", ms=5, color=colors[i % 10])
        if client in limits and (not shared or i == 0):
            steps = limits[client]
            xs = [t for t, _ in steps] + [end]
            ys = [v for _, v in steps]
            ax.step(
                xs,
                [*ys, ys[-1]],
                where="post",
                ls="--",
                lw=1,
                color="gray" if shared else colors[i % 10],
                label=scenario.limit_label if shared else f"limit ({client})",
            )
    for start, stop, status in next(iter(good.values())).server.outages:
        t0 = next(iter(good.values())).t0
        ax.axvspan(start - t0, stop - t0, color="red", alpha=0.08, label=f"outage ({status})")
    ax.set_ylim(-(len(good) + 1) * gap, peak * 1.15)
    ax.set_xlim(0, end)
    ax.set_title(f"{scenario.name}: accepted requests/s (0.25 s bins); 429s as ticks below 0")
    ax.set_xlabel("seconds since the client started")
    ax.set_ylabel("accepted requests/s")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    os.makedirs(directory, exist_ok=True)
    fig.savefig(os.path.join(directory, f"{scenario.name}.png"), dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="comet_sync against real-API-like limiters.")
    parser.add_argument("--only", default=",".join(s.name for s in SCENARIOS))
    parser.add_argument("--clients", default="comet,told,openai,openai10,guide")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the job counts")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--plot", metavar="DIR", help="save DIR/<scenario>.png")
    args = parser.parse_args()
    wanted = args.only.split(",")
    unknown = set(wanted) - {s.name for s in SCENARIOS}
    asked = args.clients.split(",")
    unknown |= set(asked) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown scenario or client: {', '.join(sorted(unknown))}")
    clients = [c for c in CLIENTS if c in asked]  # openai, openai10 first (see docstring)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:  # say so now, not after the first scenario's runs
            parser.error("--plot needs matplotlib (pip install -e '.[bench]')")
    try:
        import openai  # noqa: F401
    except ImportError:
        if {"openai", "openai10"} & set(clients):
            print("openai-python is not installed (pip install openai): its rows are skipped")
        clients = [c for c in clients if not c.startswith("openai")]
    print(
        f"{'scenario':11}  {'client':8}  {'wall s':>7}  {'/ideal':>6}  {'429s/jobs':>9}  "
        f"{'lost':>5}  {'att/jobs':>8}  extra",
        flush=True,
    )
    table: list[tuple[str, dict[str, str]]] = []
    for scenario in SCENARIOS:
        if scenario.name not in wanted:
            continue
        n = max(2, round(scenario.jobs * args.scale))
        runs: dict[str, Run] = {}
        cells: dict[str, str] = {}
        for client in clients:
            runs[client] = run = measure(scenario, client, n)
            row = row_of(run, runs)
            cells[client] = row.cell
            print(
                f"{scenario.name:11}  {client:8}  {row.wall:>7}  {row.ratio:>6}  "
                f"{row.r429:>9}  {row.lost:>5}  {row.attempts:>8}  {row.extra}",
                flush=True,
            )
        table.append((scenario.name, cells))
        if args.plot:
            plot(scenario, runs, args.plot)
    if args.markdown:
        print()
        print("| scenario | " + " | ".join(clients) + " |")
        print("|---|" + "---|" * len(clients))
        for name, cells in table:
            print(f"| {name} | " + " | ".join(cells.get(c, "-") for c in clients) + " |")


if __name__ == "__main__":
    main()
