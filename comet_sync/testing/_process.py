"""The fake server as a process of its own, for code in another process or language to test
against: ``python -m comet_sync.testing --port 8080`` or ``comet-sync fake-server``.

It takes :class:`FakeCometServer`'s knobs as options, prints its base URL (one line on stdout,
flushed, so a parent process can read where to connect), and runs until SIGINT (Ctrl-C) or
SIGTERM, then stops: no new connection is accepted, open ones are closed, exit status 0.

The key it expects (the ``api_key`` knob) is read from an environment variable named by
``--api-key-env``, never given on the command line, which other users of the machine can read
(``ps``); it is never printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import IO, Any, Callable

from ._server import DEFAULT_MODELS, LIVE_KNOBS, FakeCometServer

__all__ = ["add_server_arguments", "main", "serve", "server_from_arguments"]

# How often the main thread looks up from its wait: a signal handler has run by then. (A
# wait without a timeout is not woken by Ctrl-C on Windows.)
POLL_SECONDS = 0.2
EXIT_USAGE = 2
# The options add_server_arguments declares, each under the name of the FakeCometServer
# argument it sets: passed through as they are (only the key is read another way).
_KNOBS = ("host", "port", "models", *sorted(LIVE_KNOBS - {"api_key"}))


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The knobs of :class:`FakeCometServer`, as options of ``parser``."""
    where = parser.add_argument_group("where")
    where.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    where.add_argument(
        "--port", type=_port, default=0, help="port to listen on (default 0: any free one)"
    )
    knobs = parser.add_argument_group("behaviour (FakeCometServer's knobs)")
    knobs.add_argument(
        "--models",
        type=_names,
        default=DEFAULT_MODELS,
        help=f"comma-separated model ids that /models lists (default: {','.join(DEFAULT_MODELS)})",
    )
    knobs.add_argument("--latency", type=_seconds, default=0.0, help="seconds per request")
    knobs.add_argument(
        "--max-in-flight", type=_count, help="answer 429 past this many concurrent requests"
    )
    knobs.add_argument(
        "--rps", type=_rate, help="answer 429 past this many requests per second (token bucket)"
    )
    knobs.add_argument("--burst", type=_rate, help="the bucket's size (default rps/10, >= 1)")
    knobs.add_argument(
        "--retry-after", type=_seconds, help="seconds to put in the Retry-After of those 429s"
    )
    knobs.add_argument(
        "--outage", type=_status, help="answer every request with this status (say 503)"
    )
    knobs.add_argument(
        "--error-every",
        type=_count,
        help="fail every n-th request, in turn with a 503, a 500 and a dropped connection",
    )
    knobs.add_argument(
        "--stream-chunks",
        type=_count,
        help="content chunks of a streamed answer (default: one a word)",
    )
    knobs.add_argument(
        "--stream-delay", type=_seconds, default=0.0, help="seconds between streamed chunks"
    )
    knobs.add_argument(
        "--api-key-env",
        metavar="VARIABLE",
        help="answer 401 to any bearer token but the value of this environment variable",
    )


def server_from_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> FakeCometServer:
    """A (not yet started) server with the knobs ``args`` give."""
    api_key = None
    if args.api_key_env is not None:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"--api-key-env: the variable {args.api_key_env} is not set")
    return FakeCometServer(api_key=api_key, **{name: getattr(args, name) for name in _KNOBS})


def serve(server: FakeCometServer, *, out: IO[str], err: IO[str]) -> int:
    """Run ``server`` until SIGINT or SIGTERM; its base URL goes to ``out`` first. From the
    main thread (where signal handlers are set)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            server.start()
        except OSError as exc:  # the port is taken, the address is not this machine's
            print(f"fake server: cannot listen: {exc.strerror or exc}", file=err)
            return EXIT_USAGE
        try:
            print(server.base_url, file=out, flush=True)
            print("fake server running; Ctrl-C or SIGTERM stops it", file=err, flush=True)
            while not stop.wait(POLL_SECONDS):
                pass
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("fake server stopped", file=err, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m comet_sync.testing",
        description="Run a fake CometAPI server (OpenAI's wire format) until Ctrl-C or "
        "SIGTERM; its base URL is printed on stdout.",
    )
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    return serve(server_from_arguments(parser, args), out=sys.stdout, err=sys.stderr)


# -- option types -------------------------------------------------------------------------------


def _number(text: str, kind: Callable[[str], Any], ok: Callable[[Any], bool], want: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
    return value


def _seconds(text: str) -> float:
    return float(_number(text, float, lambda v: v >= 0, "seconds >= 0"))


def _rate(text: str) -> float:
    return float(_number(text, float, lambda v: v > 0, "a positive number"))


def _count(text: str) -> int:
    return int(_number(text, int, lambda v: v >= 1, "a whole number >= 1"))


def _port(text: str) -> int:
    return int(_number(text, int, lambda v: 0 <= v <= 65535, "a port, 0-65535"))


def _status(text: str) -> int:
    return int(_number(text, int, lambda v: 100 <= v <= 599, "an HTTP status, 100-599"))


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one model id or more, comma-separated")
    return names
