"""Rate-limit scenarios against the fake server: each client once per scenario, same process.

    .venv/bin/python benchmarks/ratelimit.py [--only S1,S2] [--clients comet,told,openai,guide]

Columns: wall time / ideal time, 429s / jobs, failed jobs, amplification (attempts the server
saw / jobs), the most requests the server saw in flight, and a scenario-specific figure.

Clients: comet_sync with defaults (not told the server's limit); comet_sync told the limit;
openai-python with its defaults on 32 threads (when installed: pip install -e '.[bench]');
the CometAPI guide's recipe (a semaphore of 5, retry 429/5xx after min(30, 2^n) + U(0, 1) s,
at most 5 attempts) on 32 threads with a plain requests session.

Scenarios (from issue 4):
  S1 known limit: 300 jobs, server 50 req/s (burst 5), 20 ms latency.
  S2 unknown limit: 300 jobs, server allows 4 in flight, 100 ms latency; comet max_concurrency=32.
  S3 limit drop: 300 jobs, 60 req/s until 150 have succeeded, 20 req/s after; 429s after the drop.
  S4 Retry-After herd: 100 jobs, server 20 req/s (burst 5) sending Retry-After: 1 on its 429s;
     the peak arrivals in any 100 ms after the first cooldown, and retries sent too early.
  S5 outage: 200 jobs, every request fails 503 for the first 3 s, then heals; amplification
     during the outage.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from comet_sync import CometClient
from comet_sync.testing import FakeCometServer

MODEL = "gpt-4o-mini"
KEY = "bench-key"


def jobs(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"model": MODEL, "messages": [{"role": "user", "content": f"{tag}-{i}"}]}
            for i in range(n)]


# -- clients: each takes (base_url, jobs, told) and returns the number of failed jobs ---------

def run_comet(base_url: str, batch: list[dict[str, Any]], told: dict[str, Any]) -> int:
    with CometClient(api_key=KEY, base_url=base_url, **told) as client:
        results = list(client.chat.completions.map(batch, return_exceptions=True))
    return sum(isinstance(r, BaseException) for r in results)


def run_openai(base_url: str, batch: list[dict[str, Any]], told: dict[str, Any]) -> int:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=base_url)

    def one(job: dict[str, Any]) -> bool:
        try:
            client.chat.completions.create(**job)
            return True
        except openai.OpenAIError:
            return False

    with ThreadPoolExecutor(32) as pool:
        ok = list(pool.map(one, batch))
    client.close()
    return ok.count(False)


def run_guide(base_url: str, batch: list[dict[str, Any]], told: dict[str, Any]) -> int:
    semaphore = threading.Semaphore(5)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))
    url = base_url + "/chat/completions"

    def one(job: dict[str, Any]) -> bool:
        for attempt in range(5):
            with semaphore:
                r = session.post(url, json=job, headers={"Authorization": f"Bearer {KEY}"},
                                 timeout=60)
            if r.status_code == 200:
                return True
            if r.status_code not in (429, 500, 503, 504, 524) or attempt == 4:
                return False
            time.sleep(min(30, 2**attempt) + random.random())
        return False

    with ThreadPoolExecutor(32) as pool:
        ok = list(pool.map(one, batch))
    session.close()
    return ok.count(False)


CLIENTS: dict[str, tuple[str, Callable[..., int]]] = {
    "comet": ("comet_sync defaults", run_comet),
    "told": ("comet_sync told the limit", run_comet),
    "openai": ("openai-python, 32 threads", run_openai),
    "guide": ("CometAPI guide recipe", run_guide),
}


# -- scenarios -------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    jobs: int
    server: dict[str, Any]
    ideal: float | None
    comet: dict[str, Any]  # settings for "comet_sync defaults"
    told: dict[str, Any]  # settings for "comet_sync told the limit"
    during: Callable[[FakeCometServer, threading.Event], None] | None = None
    extra: Callable[[FakeCometServer, dict[str, Any]], str] | None = None


def s3_drop(server: FakeCometServer, done: threading.Event) -> None:
    while not done.is_set():
        if server.stats().statuses.get(200, 0) >= 150:
            server.configure(rps=20, burst=2)
            server.drop_at = time.monotonic()  # type: ignore[attr-defined]
            return
        time.sleep(0.002)


def s3_extra(server: FakeCometServer, info: dict[str, Any]) -> str:
    drop_at = getattr(server, "drop_at", None)
    if drop_at is None:
        return "no drop"
    after = [r for r in server.received if r.started >= drop_at]
    n429 = sum(r.status == 429 for r in after)
    return f"429s after drop: {n429} ({n429 / 150:.1%} of 150 jobs)"


def s4_extra(server: FakeCometServer, info: dict[str, Any]) -> str:
    received = server.received
    first_429 = next((r for r in received if r.status == 429), None)
    if first_429 is None:
        return "no 429"
    cooled = first_429.ended + 1.0
    starts = sorted(r.started for r in received if r.started >= cooled)
    peak, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] < t - 0.1:
            j += 1
        peak = max(peak, i - j + 1)
    early = 0
    last_429: dict[str, float] = {}
    for r in received:
        key = _key(r.body)
        if key in last_429 and r.started < last_429[key] + 1.0 - 0.005:
            early += 1
        if r.status == 429:
            last_429[key] = r.ended
    paced = 20 * 0.1
    return f"peak/100ms after cooldown: {peak} ({peak / paced:.1f}x paced), early retries: {early}"


def s5_outage(server: FakeCometServer, done: threading.Event) -> None:
    server.configure(outage=503)
    server.outage_from = time.monotonic()  # type: ignore[attr-defined]
    done.wait(3.0)
    server.configure(outage=None)
    server.outage_to = time.monotonic()  # type: ignore[attr-defined]


def s5_extra(server: FakeCometServer, info: dict[str, Any]) -> str:
    start = getattr(server, "outage_from", 0.0)
    end = getattr(server, "outage_to", time.monotonic())
    during = [r for r in server.received if start <= r.started < end]
    keys = {_key(r.body) for r in during}
    amp = len(during) / len(keys) if keys else 0.0
    return f"amplification during outage: {amp:.2f}x ({len(during)} attempts, {len(keys)} jobs)"


def _key(body: Any) -> str:
    try:
        return str(body["messages"][-1]["content"])
    except (TypeError, KeyError, IndexError):
        return ""


SCENARIOS = [
    Scenario("S1", 300, {"rps": 50, "burst": 5, "latency": 0.02}, 300 / 50, {},
             {"rpm": 50 * 60}),
    Scenario("S2", 300, {"max_in_flight": 4, "latency": 0.1}, 300 / 4 * 0.1,
             {"max_concurrency": 32}, {"max_concurrency": 4}),
    Scenario("S3", 300, {"rps": 60, "burst": 6, "latency": 0.02}, 150 / 60 + 150 / 20, {},
             {"rpm": 60 * 60}, during=s3_drop, extra=s3_extra),
    Scenario("S4", 100, {"rps": 20, "burst": 5, "latency": 0.02, "retry_after": 1},
             100 / 20, {}, {"rpm": 20 * 60}, extra=s4_extra),
    Scenario("S5", 200, {"latency": 0.02}, None, {}, {}, during=s5_outage, extra=s5_extra),
]


def run(scenario: Scenario, client: str) -> dict[str, Any]:
    label, fn = CLIENTS[client]
    settings = {"comet": scenario.comet, "told": scenario.told}.get(client, {})
    with FakeCometServer(**scenario.server) as server:
        done = threading.Event()
        side = None
        if scenario.during is not None:
            side = threading.Thread(target=scenario.during, args=(server, done), daemon=True)
            side.start()
        started = time.monotonic()
        failed = fn(server.base_url, jobs(scenario.jobs, scenario.name), settings)
        wall = time.monotonic() - started
        done.set()
        if side is not None:
            side.join()
        stats = server.stats()
        info = {
            "client": label,
            "wall": wall,
            "ratio": wall / scenario.ideal if scenario.ideal else None,
            "429s": stats.statuses.get(429, 0) / scenario.jobs,
            "failed": failed,
            "amp": stats.requests / scenario.jobs,
            "max_in_flight": stats.max_in_flight,
        }
        info["extra"] = scenario.extra(server, info) if scenario.extra else ""
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description="Rate-limit scenarios (issue 4).")
    parser.add_argument("--only", default="S1,S2,S3,S4,S5")
    parser.add_argument("--clients", default="comet,told,openai,guide")
    args = parser.parse_args()
    wanted = args.only.split(",")
    clients = args.clients.split(",")
    try:
        import openai  # noqa: F401
    except ImportError:
        if "openai" in clients:
            clients.remove("openai")
            print("openai-python is not installed: its rows are skipped")
    print(f"{'scen':4}  {'client':27}  {'wall s':>6}  {'/ideal':>6}  {'429s/jobs':>9}  "
          f"{'failed':>6}  {'amp':>5}  {'max in flight':>13}  notes")
    for scenario in SCENARIOS:
        if scenario.name not in wanted:
            continue
        for client in clients:
            r = run(scenario, client)
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
            print(f"{scenario.name:4}  {r['client']:27}  {r['wall']:6.2f}  {ratio:>6}  "
                  f"{r['429s']:9.1%}  {r['failed']:6d}  {r['amp']:5.2f}  "
                  f"{r['max_in_flight']:13d}  {r['extra']}", flush=True)


if __name__ == "__main__":
    main()
