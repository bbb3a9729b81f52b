"""The ``comet-sync`` command: ``batch``, ``chat`` and ``demo``."""

from __future__ import annotations

import _thread
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any

from ._batch import BatchResult, run_batch
from ._client import CometClient
from ._config import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RETRIES
from ._demo import run_demo
from ._exceptions import APIError, CometError
from ._jsonl import count_lines, done_ids, read_jobs
from ._metrics import format_table
from ._version import __version__

__all__ = ["main"]

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
# Seconds that calls in flight get to finish after Ctrl-C / SIGTERM before they are abandoned.
DEFAULT_GRACE = 30.0
EXIT_FAILED_LINES = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comet-sync",
        description="A synchronous, thread-safe client for CometAPI. The key comes from "
                    "COMETAPI_KEY (COMETAPI_BASE_URL overrides the address).",
    )
    parser.add_argument("--version", action="version", version=f"comet-sync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every attempt")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    batch = sub.add_parser(
        "batch", help="run a JSONL file of chat requests",
        description="Run every line of INPUT (a chat request body, optionally with custom_id "
                    "and metadata) and write one result line per input line to OUTPUT: "
                    "custom_id, metadata, response or error, attempts, latency. Safe to "
                    "interrupt: rerun with --resume to finish.",
    )
    batch.add_argument("input", metavar="INPUT.jsonl")
    batch.add_argument("-o", "--output", metavar="OUTPUT.jsonl", required=True)
    batch.add_argument("--model", help="model for lines that name none")
    batch.add_argument("--concurrency", type=_positive_int, default=DEFAULT_MAX_CONCURRENCY,
                       help=f"most requests in flight (default {DEFAULT_MAX_CONCURRENCY})")
    batch.add_argument("--rpm", type=_positive_float, help="requests per minute, at most")
    batch.add_argument("--tpm", type=_positive_float, help="tokens per minute, at most")
    batch.add_argument("--max-retries", type=_non_negative_int, default=DEFAULT_MAX_RETRIES,
                       help=f"retries per request (default {DEFAULT_MAX_RETRIES})")
    batch.add_argument("--resume", action="store_true",
                       help="skip the ids OUTPUT already holds and append the rest")
    batch.add_argument("--unordered", action="store_true",
                       help="write results as they complete, not in input order")
    batch.add_argument("--grace", type=_positive_float, default=DEFAULT_GRACE,
                       help="seconds in-flight calls get after Ctrl-C (default 30)")
    batch.add_argument("--no-progress", action="store_true", help="no progress line")

    chat = sub.add_parser("chat", help="one chat call, printed as it streams",
                          description="Send one prompt and print the answer.")
    chat.add_argument("prompt")
    chat.add_argument("--model", default=DEFAULT_CHAT_MODEL,
                      help=f"default {DEFAULT_CHAT_MODEL}")
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")

    demo = sub.add_parser(
        "demo", help="fire a few hundred calls and print the metrics",
        description="Send chat calls through one client and print its per-model metrics: to "
                    "the embedded fake server when COMETAPI_KEY is unset, to CometAPI when it "
                    "is set.",
    )
    demo.add_argument("--calls", type=_positive_int, default=300, help="how many (default 300)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "batch":
            return _batch(args, parser)
        if args.command == "chat":
            return _chat(args)
        return run_demo(args.calls, sys.stdout)
    except CometError as exc:
        # Configuration problems (no key, a bad setting): one line, no traceback.
        print(f"comet-sync {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


# -- chat --------------------------------------------------------------------------------------

def _chat(args: argparse.Namespace) -> int:
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    with CometClient() as client:
        try:
            if args.no_stream:
                reply = client.chat.completions.create(model=args.model, messages=messages)
                sys.stdout.write((reply.choices[0].message.content or "") + "\n")
            else:
                with client.chat.completions.create(model=args.model, messages=messages,
                                                    stream=True) as stream:
                    for text in stream.text_deltas():
                        sys.stdout.write(text)
                        sys.stdout.flush()
                sys.stdout.write("\n")
        except APIError as exc:
            print(f"\ncomet-sync chat: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED_LINES
    return 0


# -- batch -------------------------------------------------------------------------------------

class _Interrupts:
    """First SIGINT/SIGTERM: stop taking lines, let calls in flight finish (for ``grace``
    seconds). Second, or the grace period over: abandon them."""

    def __init__(self, grace: float) -> None:
        self.stop = threading.Event()
        self.grace = grace
        self.signal_name = ""
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._timer is not None:
            self._timer.cancel()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name}: no new lines; waiting up to {self.grace:g}s for the calls "
              "in flight (Ctrl-C again to abandon them)", file=sys.stderr, flush=True)
        self._timer = threading.Timer(self.grace, _thread.interrupt_main)
        self._timer.daemon = True
        self._timer.start()


def _batch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        source = open(args.input, encoding="utf-8")  # noqa: SIM115  (closed below)
    except OSError as exc:
        parser.error(f"cannot read {args.input}: {exc.strerror}")
    with source:
        if os.path.exists(args.output) and not args.resume:
            parser.error(f"{args.output} exists: add --resume to finish it, or remove it")
        try:
            skip = done_ids(args.output) if args.resume else set()
            out = open(args.output, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            parser.error(f"cannot write {args.output}: {exc.strerror}")
        with out, CometClient(max_concurrency=args.concurrency, max_retries=args.max_retries,
                              rpm=args.rpm, tpm=args.tpm) as client:
            total = max(count_lines(args.input) - len(skip), 0)
            return _run(args, client, source, out, skip, total)


def _run(args: argparse.Namespace, client: CometClient, source: IO[str], out: IO[str],
         skip: set[str], total: int) -> int:
    interrupts = _Interrupts(args.grace)
    interrupts.install()
    progress = _Progress(total, client, enabled=not args.no_progress and sys.stderr.isatty())
    written = failed = 0
    abandoned = False
    started = time.monotonic()
    jobs = read_jobs(source, default_model=args.model, skip=skip)
    results: Iterator[BatchResult] = run_batch(
        client, jobs, ordered=not args.unordered, stop=interrupts.stop
    )
    try:
        for result in results:
            # One write per line, flushed at once: a crash leaves only whole lines behind.
            out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            out.flush()
            written += 1
            failed += not result.ok
            progress.update(written)
    except KeyboardInterrupt:
        abandoned = True
    finally:
        interrupts.uninstall()
        progress.close()
    wall = time.monotonic() - started
    print(format_table(client.metrics.snapshot()))
    print(f"{written} line(s) written to {args.output} ({failed} error line(s)) in {wall:.1f}s"
          + (f"; {len(skip)} already there" if skip else ""))
    if interrupts.stop.is_set():
        print(f"interrupted by {interrupts.signal_name}: resume with\n  comet-sync batch "
              f"{args.input} -o {args.output} --resume", file=sys.stderr)
        if abandoned:
            # Abandoned calls may still be retrying on worker threads; do not wait for them.
            sys.stdout.flush()
            sys.stderr.flush()
            out.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    return EXIT_FAILED_LINES if failed else 0


class _Progress:
    """done/total, rate, 429s absorbed, ETA on a terminal; nothing otherwise. tqdm when it is
    installed (``comet-sync[progress]``), a plain line when not."""

    def __init__(self, total: int, client: CometClient, *, enabled: bool) -> None:
        self.total = total
        self.client = client
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = 0.0
        self.bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, unit="call", file=sys.stderr)

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2 and done < self.total:
            return
        self.last = now
        throttled = sum(s.throttled for s in self.client.metrics.snapshot().values())
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix({"429s": throttled}, refresh=True)
            return
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        sys.stderr.write(f"\r{done}/{self.total}  {rate:.1f}/s  429s absorbed: {throttled}  "
                         f"ETA {eta:.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


# -- argument types ----------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value:g}")
    return value


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
