"""Per-call cost of ``chat.completions.create`` versus a bare ``requests.Session().post``.

Both send the same body to the same fake server, one call at a time, in alternating rounds
within one run; the ratio of the median round times is the client's overhead (validation,
retry wrapper, slot, parsing into objects, the metrics record). Target: <= 1.15x.

    .venv/bin/python benchmarks/overhead.py [--calls 400] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import requests

from comet_sync import CometClient
from comet_sync.testing import FakeCometServer

BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of Italy?"},
    ],
    "temperature": 0.2,
}


def bare(session: requests.Session, url: str, calls: int) -> float:
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    started = time.perf_counter()
    for _ in range(calls):
        r = session.post(url, data=json.dumps(BODY), headers=headers, timeout=30)
        r.raise_for_status()
        _ = r.json()["choices"][0]["message"]["content"]
    return time.perf_counter() - started


def client_calls(client: CometClient, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        _ = client.chat.completions.create(**BODY).choices[0].message.content
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with (
        FakeCometServer() as server,
        requests.Session() as session,
        CometClient(api_key="k", base_url=server.base_url) as client,
    ):
        url = server.base_url + "/chat/completions"
        bare(session, url, 50)  # warm both connections and code paths
        client_calls(client, 50)
        bare_times, client_times = [], []
        for _ in range(args.rounds):
            bare_times.append(bare(session, url, args.calls))
            client_times.append(client_calls(client, args.calls))
    b = statistics.median(bare_times) / args.calls
    c = statistics.median(client_times) / args.calls
    print(f"calls per round: {args.calls}, rounds: {args.rounds} (median round)")
    print(f"bare requests.Session().post: {b * 1e3:.3f} ms/call")
    print(f"CometClient.chat.completions.create: {c * 1e3:.3f} ms/call")
    print(f"ratio: {c / b:.3f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
