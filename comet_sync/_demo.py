"""What ``make demo`` runs: a few hundred chat calls through one client, then its metrics.

With no key in the environment the calls go to the embedded fake server, which is limited
to 60 requests/s and fails some calls on purpose (503s, 500s, dropped connections), so the
table shows retries and 429s being absorbed. With ``COMETAPI_KEY`` set, a small real batch
goes to CometAPI instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from typing import Any, TextIO

from ._client import CometClient
from ._config import API_KEY_ENV_VARS
from ._metrics import format_table
from .testing import FakeCometServer
from .testing._env import FAKE_KEY

__all__ = ["run_demo"]

FAKE_MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash")
# A real run costs money: keep it small and on a cheap model unless told otherwise.
REAL_CALLS = 12
REAL_MODEL_ENV = "COMET_SYNC_DEMO_MODEL"
REAL_DEFAULT_MODEL = "gpt-4o-mini"


def run_demo(calls: int, out: TextIO) -> int:
    """Run the demo; the exit status (0 when no call was lost)."""
    real = any(os.environ.get(name) for name in API_KEY_ENV_VARS)
    with contextlib.ExitStack() as stack:
        settings: dict[str, Any] = {}
        if not real:
            # One request in 25 fails: a 503, a 500 or a dropped connection, in turn.
            server = stack.enter_context(
                FakeCometServer(rps=60, burst=8, latency=0.02, error_every=25)
            )
            settings = {"api_key": FAKE_KEY, "base_url": server.base_url}
        if real:
            calls = min(calls, REAL_CALLS)
            models: tuple[str, ...] = (os.environ.get(REAL_MODEL_ENV, REAL_DEFAULT_MODEL),)
            out.write(f"COMETAPI_KEY is set: {calls} real calls to {models[0]}\n")
        else:
            models = FAKE_MODELS
            out.write(
                f"No COMETAPI_KEY: {calls} calls to the embedded fake CometAPI server, "
                "limited to 60 requests/s, with injected 503s, 500s and dropped connections\n"
            )
        with CometClient(**settings, max_concurrency=8) as client:
            started = time.monotonic()
            results = list(
                client.chat.completions.map(_jobs(calls, models), return_exceptions=True)
            )
            wall = time.monotonic() - started
            failed = [r for r in results if isinstance(r, BaseException)]
            snapshot = client.metrics.snapshot()
            out.write("\n" + format_table(snapshot) + "\n\n")
            lim = snapshot.limiter
            lanes = (lim.models if lim is not None else None) or {}
            for name, model in sorted(lanes.items()):
                rate = (
                    f"{model.rate:.1f} requests/s ({model.rate_source})"
                    if model.rate is not None
                    else "none needed"
                )
                out.write(
                    f"limiter, {name}: concurrency {model.concurrency_limit} of "
                    f"{lim.max_concurrency if lim else '?'}, pace {rate}, {model.throttled} 429s, "
                    f"{model.cuts} cuts, {model.deferred} sends deferred\n"
                )
            answered = len(results) - len(failed)
            out.write(
                f"{calls} calls sent, {answered} answered, {len(failed)} failed, "
                f"{calls - len(results)} lost, in {wall:.2f}s\n"
            )
            for exc in failed[:5]:
                out.write(f"  failed: {type(exc).__name__}: {exc}\n")
    return 0 if not failed and len(results) == calls else 1


def _jobs(calls: int, models: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for i, model in zip(range(calls), itertools.cycle(models)):
        yield {
            "model": model,
            "messages": [{"role": "user", "content": f"Give me a one-line fact, number {i}."}],
            "max_tokens": 32,
        }
