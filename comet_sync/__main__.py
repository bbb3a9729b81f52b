"""The ``comet-sync`` command (also ``python -m comet_sync``)."""

from __future__ import annotations

import argparse
import logging
import sys

from ._demo import run_demo
from ._version import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comet-sync",
        description="A synchronous, thread-safe client for CometAPI.",
    )
    parser.add_argument("--version", action="version", version=f"comet-sync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every attempt")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = sub.add_parser(
        "demo",
        help="fire a few hundred calls and print the metrics",
        description=(
            "Send chat calls through one client and print its per-model metrics: to the "
            "embedded fake server when COMETAPI_KEY is unset, to CometAPI when it is set."
        ),
    )
    demo.add_argument("--calls", type=_positive_int, default=300, help="how many (default 300)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    if args.command == "demo":
        return run_demo(args.calls, sys.stdout)
    return 2  # argparse rejects unknown commands before this


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
