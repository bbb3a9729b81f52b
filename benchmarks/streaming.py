"""Streaming and the response cache, against the fake server.

    .venv/bin/python benchmarks/streaming.py

1. Time to first chunk through ``Stream`` versus reading the same SSE with a bare
   ``requests`` stream, alternating rounds in one run (target <= 1.2x).
2. Per-chunk cost: the CPU time the reading thread spends per chunk of a 400-chunk stream
   (``time.thread_time``, so the in-process server's own work is not counted), ``Stream``
   versus a bare ``iter_lines`` + ``json.loads`` (target <= 1.5x).
3. Connections: 20 streams read one after another through one client; how many TCP
   connections the server saw opened (target: 1, i.e. zero reconnects).
4. 100 threads asking 10 distinct prompts with the cache on: how many requests reach the
   server (target: exactly 10).
"""

from __future__ import annotations

import json
import statistics
import threading
import time

import requests

from comet_sync import CometClient, ResponseCache
from comet_sync.testing import FakeCometServer

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "stream this"}],
    "stream": True,
}


def bare_ttfb(session: requests.Session, url: str) -> float:
    started = time.perf_counter()
    with session.post(
        url,
        data=json.dumps(BODY),
        stream=True,
        timeout=30,
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
    ) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                json.loads(line[6:])
                elapsed = time.perf_counter() - started
                break
        for _ in r.iter_lines():
            pass
    return elapsed


def client_ttfb(client: CometClient) -> float:
    started = time.perf_counter()
    with client.chat.completions.create(**BODY) as stream:
        next(stream)
        elapsed = time.perf_counter() - started
        for _ in stream:
            pass
    return elapsed


def ttfb(rounds: int = 7, per_round: int = 100) -> None:
    with (
        FakeCometServer(stream_chunks=5) as server,
        requests.Session() as session,
        CometClient(api_key="k", base_url=server.base_url) as client,
    ):
        url = server.base_url + "/chat/completions"
        for _ in range(20):
            bare_ttfb(session, url)
            client_ttfb(client)
        bare, ours = [], []
        for _ in range(rounds):
            bare.append(statistics.median(bare_ttfb(session, url) for _ in range(per_round)))
            ours.append(statistics.median(client_ttfb(client) for _ in range(per_round)))
    b, c = statistics.median(bare), statistics.median(ours)
    print(
        f"time to first chunk: bare requests stream {b * 1e3:.3f} ms, "
        f"Stream {c * 1e3:.3f} ms, ratio {c / b:.3f}x (target <= 1.2x)"
    )


CHUNKS = 400


def bare_chunks(session: requests.Session, url: str) -> tuple[float, int]:
    started = time.thread_time()
    n = 0
    with session.post(
        url,
        data=json.dumps(BODY),
        stream=True,
        timeout=30,
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
    ) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                _ = chunk["choices"][0]["delta"].get("content")
                n += 1
    return time.thread_time() - started, n


def client_chunks(client: CometClient) -> tuple[float, int]:
    started = time.thread_time()
    n = 0
    with client.chat.completions.create(**BODY) as stream:
        for chunk in stream:
            _ = chunk.choices[0].delta.content if chunk.choices else None
            n += 1
    return time.thread_time() - started, n


def per_chunk(rounds: int = 7, per_round: int = 10) -> None:
    with (
        FakeCometServer(stream_chunks=CHUNKS) as server,
        requests.Session() as session,
        CometClient(api_key="k", base_url=server.base_url) as client,
    ):
        url = server.base_url + "/chat/completions"
        for _ in range(3):
            bare_chunks(session, url)
            client_chunks(client)
        bare, ours = [], []
        for _ in range(rounds):
            b = [bare_chunks(session, url) for _ in range(per_round)]
            c = [client_chunks(client) for _ in range(per_round)]
            bare.append(sum(t for t, _ in b) / sum(n for _, n in b))
            ours.append(sum(t for t, _ in c) / sum(n for _, n in c))
    b, c = statistics.median(bare), statistics.median(ours)
    print(
        f"per chunk (CPU of the reading thread): bare iter_lines {b * 1e6:.1f} us, "
        f"Stream {c * 1e6:.1f} us, ratio {c / b:.3f}x (target <= 1.5x)"
    )


def reconnects(streams: int = 20) -> None:
    with (
        FakeCometServer(stream_chunks=5) as server,
        CometClient(api_key="k", base_url=server.base_url) as client,
    ):
        for _ in range(streams):
            client_chunks(client)
        opened = server.stats().connections_opened
    print(
        f"{streams} sequential streams: {opened} connection(s) opened, "
        f"{opened - 1} reconnect(s) (target: 0)"
    )


def cache() -> None:
    with (
        FakeCometServer(latency=0.05) as server,
        CometClient(
            api_key="k", base_url=server.base_url, cache=ResponseCache(), max_concurrency=8
        ) as client,
    ):
        barrier = threading.Barrier(100)

        def ask(i: int) -> None:
            barrier.wait()
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"prompt {i % 10}"}]
            )

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(
            f"cache: 100 threads, 10 distinct prompts -> {server.stats().requests} requests "
            f"reached the server (target: exactly 10)"
        )


if __name__ == "__main__":
    ttfb()
    per_chunk()
    reconnects()
    cache()
