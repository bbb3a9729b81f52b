"""The ``comet-sync`` command: ``batch``, ``chat``, ``demo`` and ``fake-server``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterable
from types import FrameType
from typing import IO, Any, Callable, Protocol

from . import _observe
from ._batch.engine import BatchJob, BatchResult, Run, run_batch
from ._batch.journal import Journal, discard_journal
from ._batch.jsonl import (
    FORMATS,
    Resumed,
    count_lines,
    format_result,
    prepare_resume,
    read_jobs,
    read_state,
    state_path,
    write_state,
)
from ._batch.ledger import InputChanged, InputLedger
from ._batch.lock import OutputLock, OutputLocked
from ._batch.output import LineWriter, OutputFailed
from ._client import CometClient
from ._config import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RETRIES, resolve_base_url
from ._demo import run_demo
from ._exceptions import APIError, CometError
from ._messages import ChatCompletionMessageParam
from ._metrics import Snapshot, format_table
from ._version import __version__
from .testing import FakeCometServer
from .testing._env import FAKE_KEY
from .testing._process import add_server_arguments, serve, server_from_arguments

__all__ = ["main"]

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
# Seconds that calls in flight get to finish after Ctrl-C / SIGTERM before they are abandoned.
DEFAULT_GRACE = 30.0
EXIT_FAILED_LINES = 1
EXIT_USAGE = 2
EXIT_OUTPUT_FAILED = 3  # the output could not be written (a full disk): stopped, lines whole
EXIT_WORKERS_FAILED = 4  # --celery: a worker could not run a chunk (its error is printed)
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
        "batch",
        help="run a JSONL file of chat (or embeddings) requests",
        description="Run every line of INPUT (a chat request body, optionally with custom_id "
        "and metadata; or a line of OpenAI's Batch API format) and write one result "
        "line per input line to OUTPUT. INPUT may be - for stdin. Safe to "
        "interrupt: the run's options are kept beside OUTPUT, and "
        "'comet-sync batch -o OUTPUT --resume' finishes it.",
    )
    batch.add_argument(
        "input",
        metavar="INPUT.jsonl",
        nargs="?",
        help="the requests (- for stdin); on --resume, the run's own by default",
    )
    batch.add_argument("-o", "--output", metavar="OUTPUT.jsonl", required=True)
    batch.add_argument("--model", help="model for lines that name none")
    batch.add_argument(
        "--concurrency",
        type=_positive_int,
        help=f"most requests in flight (default {DEFAULT_MAX_CONCURRENCY})",
    )
    batch.add_argument("--rpm", type=_positive_float, help="requests per minute, at most")
    batch.add_argument("--tpm", type=_positive_float, help="tokens per minute, at most")
    batch.add_argument(
        "--max-retries",
        type=_non_negative_int,
        help=f"retries per request (default {DEFAULT_MAX_RETRIES})",
    )
    batch.add_argument(
        "--output-format",
        choices=FORMATS,
        help="comet (default): custom_id, response or error, attempts, latency; "
        "openai: the Batch API's output lines",
    )
    batch.add_argument(
        "--resume",
        action="store_true",
        help="skip the jobs OUTPUT already holds and append the rest, with the "
        "options the run was started with (any given here win)",
    )
    batch.add_argument(
        "--retry-errors",
        action="store_true",
        help="with --resume: send again the lines that ended in an error that "
        "may heal (429, 5xx, timeouts, dropped connections)",
    )
    batch.add_argument(
        "--unordered",
        action="store_true",
        default=None,
        help="write results as they complete, not in input order",
    )
    batch.add_argument(
        "--grace",
        type=_positive_float,
        default=DEFAULT_GRACE,
        help="seconds in-flight calls get after Ctrl-C (default 30)",
    )
    batch.add_argument("--no-progress", action="store_true", help="no progress line")
    _add_fake(batch, "send to")
    batch.add_argument(
        "--celery",
        metavar="MODULE:APP",
        help="send the lines to the Celery workers of this app (set up with "
        "comet_sync.contrib.celery.setup); the output is written here",
    )
    batch.add_argument(
        "--chunk-size",
        type=_positive_int,
        help="with --celery: lines per task (default 100)",
    )

    chat = sub.add_parser(
        "chat",
        help="one chat call, printed as it streams",
        description="Send one prompt and print the answer.",
    )
    chat.add_argument("prompt")
    chat.add_argument("--model", default=DEFAULT_CHAT_MODEL, help=f"default {DEFAULT_CHAT_MODEL}")
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    _add_fake(chat, "ask")

    demo = sub.add_parser(
        "demo",
        help="fire a few hundred calls and print the metrics",
        description="Send chat calls through one client and print its per-model metrics: to "
        "the embedded fake server when COMETAPI_KEY is unset, to CometAPI when it "
        "is set.",
    )
    demo.add_argument("--calls", type=_positive_int, default=300, help="how many (default 300)")

    fake = sub.add_parser(
        "fake-server",
        help="run the fake CometAPI server until Ctrl-C",
        description="Run the fake CometAPI server (python -m comet_sync.testing) for code in "
        "another process or language to test against; its base URL is printed on stdout. "
        "Ctrl-C or SIGTERM stops it.",
    )
    add_server_arguments(fake)
    # Errors found after parsing speak as the subcommand's own parser does ("usage: comet-sync
    # batch ...", "comet-sync batch: error: ..."), as argparse's own errors for it do.
    for command in (batch, fake):
        command.set_defaults(command_parser=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "batch":
            return _batch(args, args.command_parser)
        if args.command == "chat":
            return _chat(args)
        if args.command == "fake-server":
            server = server_from_arguments(args.command_parser, args)
            return serve(server, out=sys.stdout, err=sys.stderr)
        return run_demo(args.calls, sys.stdout)
    except CometError as exc:
        # Configuration problems (no key, a bad setting): one line, no traceback.
        message = str(exc)
        if message.startswith("No API key"):
            message = (
                "no API key: set COMETAPI_KEY, or try it offline against the embedded "
                "fake server with --fake"
            )
        print(f"comet-sync {args.command}: {message}", file=sys.stderr)
        return EXIT_USAGE


# -- chat --------------------------------------------------------------------------------------


def _chat(args: argparse.Namespace) -> int:
    messages: list[ChatCompletionMessageParam] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(CometClient(**_connection(args.fake, stack)))
        try:
            if args.no_stream:
                reply = client.chat.completions.create(model=args.model, messages=messages)
                sys.stdout.write((reply.choices[0].message.content or "") + "\n")
            else:
                with client.chat.completions.create(
                    model=args.model, messages=messages, stream=True
                ) as stream:
                    for text in stream.text_deltas():
                        sys.stdout.write(text)
                        sys.stdout.flush()
                sys.stdout.write("\n")
        except APIError as exc:
            print(f"\ncomet-sync chat: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED_LINES
    return 0


def _connection(fake: bool, stack: contextlib.ExitStack) -> dict[str, Any]:
    """Where calls go: CometAPI (key from the environment), or with --fake the embedded fake
    server, started for this command."""
    if not fake:
        return {}
    server = stack.enter_context(FakeCometServer())
    return {"api_key": FAKE_KEY, "base_url": server.base_url}


# -- batch -------------------------------------------------------------------------------------


class _Interrupts:
    """First SIGINT/SIGTERM: stop (no new line, no new request), let calls in flight finish for
    ``grace`` seconds. Second, or the grace period over: KeyboardInterrupt, and the writer
    abandons them. Any later one is ignored while the writer saves what finished."""

    def __init__(self, grace: float, on_first: Callable[[], None]) -> None:
        self.grace = grace
        self.on_first = on_first
        self.signal_name = ""
        self._stopped = False
        self._abandoned = False
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}

    @property
    def stopped(self) -> bool:
        return self._stopped

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # (run_batch_on from another thread: signals are the main thread's)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._timer is not None:
            self._timer.cancel()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._abandoned:
            # The run is saving what finished: an exception in the middle of that would lose
            # paid results. (kill -9 still ends it; a resume finds what was written.)
            print("saving what has finished; a moment", file=sys.stderr, flush=True)
            return
        if self._stopped:
            self._abandoned = True
            raise KeyboardInterrupt
        self._stopped = True
        self.signal_name = signal.Signals(signum).name
        self.on_first()
        print(
            f"\n{self.signal_name}: nothing new is sent; waiting up to {self.grace:g}s for the "
            "calls in flight (Ctrl-C again to abandon them)",
            file=sys.stderr,
            flush=True,
        )
        # A real signal, not _thread.interrupt_main(): only a signal wakes the main thread
        # from the wait it is blocked in.
        self._timer = threading.Timer(self.grace, os.kill, (os.getpid(), signum))
        self._timer.daemon = True
        self._timer.start()


class _Backend(Protocol):
    """Where a batch's lines are sent: this process's client, or Celery workers
    (``contrib.celery``'s ``CeleryBackend``). The writing around it is the same."""

    failure: str | None

    def start(
        self,
        jobs: Iterable[BatchJob],
        *,
        ordered: bool,
        early: Callable[[BatchResult], None] | None,
        retry_errors: bool,
    ) -> Run: ...

    def snapshot(self) -> Snapshot: ...


class _Local:
    """Lines sent by this process's client."""

    failure: str | None = None

    def __init__(self, client: CometClient) -> None:
        self.client = client

    def start(
        self,
        jobs: Iterable[BatchJob],
        *,
        ordered: bool,
        early: Callable[[BatchResult], None] | None,
        retry_errors: bool,
    ) -> Run:
        return run_batch(self.client, jobs, ordered=ordered, early=early)

    def snapshot(self) -> Snapshot:
        return self.client.metrics.snapshot()


# Where a --celery run started from Python (run_batch_on, given the app itself) is recorded
# to have gone: the command line cannot resume it without --celery MODULE:APP.
CELERY_FROM_PYTHON = "(an app given to run_batch_on)"
# The options that go to the client of this process, which a --celery run does not have.
_LOCAL_ONLY = ("concurrency", "rpm", "tpm", "max_retries", "fake")


def _batch(
    args: argparse.Namespace, parser: argparse.ArgumentParser, celery_app: Any = None
) -> int:
    if args.retry_errors and not args.resume:
        parser.error("--retry-errors goes with --resume")
    if celery_app is not None:
        args.celery = _spec_of(celery_app)
    if args.chunk_size is not None and args.celery is None and not args.resume:
        parser.error("--chunk-size goes with --celery")
    # One output, one name: through a link, a second run took a lock of its own and both wrote
    # to the same file (159 jobs paid twice), and a rewrite replaced the link, not its file.
    args.output = os.path.realpath(args.output)
    if os.path.exists(args.output) and not os.path.isfile(args.output):
        # Never read: a device such as /dev/full would be read without end.
        parser.error(
            f"{args.output} is not a regular file: a batch writes its results to a file, "
            "and resumes from it"
        )
    with contextlib.ExitStack() as stack:
        # First of all, so that two runs racing for the same output cannot both start.
        try:
            stack.enter_context(OutputLock(args.output))
        except OutputLocked as exc:
            parser.error(str(exc))
        except OSError as exc:
            parser.error(f"cannot write {args.output}: {exc.strerror}")
        existed = os.path.exists(args.output)
        if existed and not args.resume:
            parser.error(f"{args.output} exists: add --resume to finish it, or remove it")
        options = _options(args, parser)
        if options["input"] == "-":
            source: IO[bytes] = sys.stdin.buffer
        else:
            try:
                source = stack.enter_context(open(options["input"], "rb"))
            except OSError as exc:
                parser.error(f"cannot read {options['input']}: {exc.strerror}")
        # The client (or the workers' app) before any file: a configuration error (no key, no
        # such app) must leave none behind (the lock's file goes with the lock).
        backend: _Backend
        celery_backend: Any = None
        if options["celery"]:
            celery_backend = _celery_backend(args, options, parser, celery_app)
            stack.callback(celery_backend.close)
            backend = celery_backend
        else:
            client = stack.enter_context(
                CometClient(
                    max_concurrency=options["concurrency"],
                    max_retries=options["max_retries"],
                    rpm=options["rpm"],
                    tpm=options["tpm"],
                    **_connection(options["endpoint"] == FAKE_ENDPOINT, stack),
                )
            )
            backend = _Local(client)
        try:
            if args.resume:
                resumed = prepare_resume(
                    args.output,
                    retry_errors=args.retry_errors,
                    input_path=options["input"],
                    defer_journal=not options["unordered"],
                )
            else:
                resumed = Resumed()
                discard_journal(args.output)  # a stale one, of an output since removed
            out = LineWriter(args.output)
            stack.callback(out.close)
            write_state(args.output, options)
            if celery_backend is not None:
                celery_backend.prepare(args.output, resume=args.resume and existed)
            ledger = InputLedger(
                args.output, fresh=not (args.resume and existed), finished=resumed.keys
            )
            stack.callback(ledger.close)
        except OutputFailed as exc:
            print(f"comet-sync batch: {exc}", file=sys.stderr)
            return EXIT_OUTPUT_FAILED
        except InputChanged as exc:
            print(_refusal(exc, args.output), file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            parser.error(f"cannot write {args.output}: {exc.strerror}")
        if resumed.from_journal:
            print(
                f"{resumed.from_journal} result(s) of the last run were found in the journal "
                f"beside {args.output} (they had finished ahead of their turn): kept, not sent "
                "again",
                file=sys.stderr,
            )
        observer = _observe.OBSERVER
        if observer is not None:  # (instrumented: the run is one trace, its calls under it)
            stack.enter_context(observer.batch_run(options["input"]))
        if resumed.removed:
            print(
                f"{resumed.removed} error or skipped line(s) taken out of {args.output} to be "
                "made again",
                file=sys.stderr,
            )
        lines = count_lines(options["input"])
        total = max(lines - len(resumed.keys), 0) if lines is not None else None
        return _run(args, options, backend, _Files(source, out, ledger), resumed, total)


def _spec_of(app: Any) -> str:
    """``module:name`` of an app given to run_batch_on, found among the imported modules, so
    that the command line can resume its run; else a mark that it cannot."""
    found = []
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name == "__main__":
            continue
        try:
            names = [n for n, v in list(vars(module).items()) if v is app]
        except Exception:  # (not every entry of sys.modules is a plain module)
            continue
        for name in names:
            if not name.startswith("_"):
                found.append((name not in ("app", "celery"), module_name, name))
    if not found:
        return CELERY_FROM_PYTHON
    _, module_name, name = min(found)
    return f"{module_name}:{name}"


def _celery_backend(
    args: argparse.Namespace,
    options: dict[str, Any],
    parser: argparse.ArgumentParser,
    app: Any,
) -> Any:
    """The workers of the app ``--celery`` names (or the one given to run_batch_on): checked
    before anything is written or sent."""
    for name in _LOCAL_ONLY:
        if getattr(args, name, None) not in (None, False):
            flag = "--" + name.replace("_", "-")
            parser.error(
                f"{flag} does not go with --celery: the workers' clients have their own "
                "settings (app.conf.comet_sync, or setup(app, ...))"
            )
    from .contrib.celery._coordinator import CeleryBackend, check_app, load_app

    if app is not None:
        app = check_app(app, "the app", argument="app")
    elif options["celery"] == CELERY_FROM_PYTHON:
        parser.error(
            f"{args.output} was started on Celery from Python: resume it with --celery "
            "MODULE:APP (or run_batch_on again)"
        )
    else:
        app = load_app(options["celery"])
    kwargs = {} if options["chunk_size"] is None else {"chunk_size": options["chunk_size"]}
    return CeleryBackend(app, **kwargs)


# The options a run keeps beside its output, with their defaults.
_OPTION_DEFAULTS: dict[str, Any] = {
    "model": None,
    "concurrency": DEFAULT_MAX_CONCURRENCY,
    "rpm": None,
    "tpm": None,
    "max_retries": DEFAULT_MAX_RETRIES,
    "unordered": False,
    "output_format": "comet",
    "celery": None,
    "chunk_size": None,
}
# Those that decide what each line's answer is: a resume may not change them, or the output
# would mix answers to two different runs.
_IDENTITY = ("model", "output_format")
# The endpoint a --fake run used (its fake server's address changes with every run).
FAKE_ENDPOINT = "fake"
# The endpoint of a --celery run: whatever the workers' settings say.
CELERY_ENDPOINT = "celery"


def _options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """This run's input and options: as given, else (on --resume) as the run was started,
    else the defaults; with the endpoint, which a resume keeps."""
    kept = read_state(args.output) if args.resume else {}
    options: dict[str, Any] = {}
    for name, default in _OPTION_DEFAULTS.items():
        given = getattr(args, name)
        if name in _IDENTITY and given is not None and name in kept and kept[name] != given:
            parser.error(
                f"{args.output} was started with --{name.replace('_', '-')} {kept[name]}: a "
                "resume cannot change it (start a new output for that)"
            )
        options[name] = given if given is not None else kept.get(name, default)
    options["input"] = args.input if args.input is not None else kept.get("input")
    if options["input"] is None:
        parser.error("INPUT is required (there is no earlier run of this output to resume)")
    if options["input"] == "-" and args.input is None:
        parser.error("the run read stdin: give the input again as - to resume it")
    options["endpoint"] = _endpoint(args, kept.get("endpoint"), parser)
    return options


def _endpoint(args: argparse.Namespace, kept: Any, parser: argparse.ArgumentParser) -> str:
    """Where this run sends: the fake server, or a base URL. A resume goes where its run went
    (a --fake run stays fake without --fake) and refuses to go anywhere else."""
    if getattr(args, "celery", None) or (kept == CELERY_ENDPOINT and args.resume):
        here = CELERY_ENDPOINT
    else:
        here = FAKE_ENDPOINT if args.fake else resolve_base_url(None)
    if kept is None or kept == here:
        return here
    if kept == FAKE_ENDPOINT and not args.fake:
        return FAKE_ENDPOINT
    where = _where(kept, "(--fake)", "(--celery)")
    now = _where(here, "", "")
    parser.error(
        f"{args.output} was started against {where}; this resume would send to {now}. "
        f"Resume it against {where}"
        + ("" if kept in (FAKE_ENDPOINT, CELERY_ENDPOINT) else " (COMETAPI_BASE_URL)")
        + ", or start a new output"
    )


def _where(endpoint: str, fake: str, celery: str) -> str:
    if endpoint == FAKE_ENDPOINT:
        return f"the embedded fake server {fake}".strip()
    if endpoint == CELERY_ENDPOINT:
        return f"Celery workers {celery}".strip()
    return endpoint


def _resume_command(options: dict[str, Any], output: str) -> str:
    words = ["comet-sync", "batch", options["input"], "-o", output, "--resume"]
    for name, default in _OPTION_DEFAULTS.items():
        value = options.get(name, default)
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        words += (
            [flag]
            if value is True
            else [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        )
    if options.get("endpoint") == FAKE_ENDPOINT:
        words.append("--fake")
    return " ".join(shlex.quote(word) for word in words)


class _Files:
    """The files a run reads and writes."""

    def __init__(self, source: IO[bytes], out: LineWriter, ledger: InputLedger) -> None:
        self.source = source
        self.out = out
        self.ledger = ledger


# Error reasons shown on the terminal at the end (all of them are in the output).
SHOWN_ERRORS = 5


def _run(
    args: argparse.Namespace,
    options: dict[str, Any],
    backend: _Backend,
    files: _Files,
    resumed: Resumed,
    total: int | None,
) -> int:
    skip = resumed.keys
    progress = _Progress(
        total, backend.snapshot, enabled=not args.no_progress and sys.stderr.isatty()
    )
    written = failed = lost = 0
    reasons: list[str] = []
    abandoned = False
    failure: OutputFailed | None = None
    changed: InputChanged | None = None
    ledger_failure: OutputFailed | None = None
    started = time.monotonic()
    jobs = read_jobs(files.source, default_model=options["model"], skip=skip, ledger=files.ledger)
    ordered = not options["unordered"]
    # (Preloaded with what a run that did not end left in it, each written in its turn.)
    journal = Journal(args.output, resumed.early) if ordered else None

    def text_of(result: BatchResult) -> str:
        line = format_result(result, options["output_format"])
        text = json.dumps(line, ensure_ascii=False)
        try:
            text.encode()
        except UnicodeEncodeError:
            # A lone surrogate from the input ("custom_id": "\ud800") is no UTF-8: written
            # escaped, which reads back as the same string.
            text = json.dumps(line)
        return text

    def hold(result: BatchResult) -> None:
        # Finished ahead of its turn: to the journal now, to the output in its turn.
        nonlocal failure
        if journal is None or result.line is None or failure is not None:
            return
        try:
            journal.hold(result.line, text_of(result))
        except OutputFailed as exc:
            failure = exc
            run.abandon()

    run = backend.start(
        jobs, ordered=ordered, early=hold if ordered else None, retry_errors=args.retry_errors
    )
    interrupts = _Interrupts(args.grace, on_first=run.stop)
    interrupts.install()

    def place_due(before: int | None) -> None:
        # The journal's results from an earlier run whose turn has come.
        nonlocal failure
        if journal is None or failure is not None:
            return
        try:
            for line, text in journal.due(before):
                files.out.write_line(text)
                journal.take(line)
            journal.settle()
        except OutputFailed as exc:
            failure = exc
            run.abandon()

    def save(result: BatchResult) -> None:
        nonlocal written, failed, lost, failure
        place_due(result.line)
        if failure is not None:
            lost += 1
            return
        held = journal.take(result.line) if journal is not None and result.line else None
        try:
            files.out.write_line(held if held is not None else text_of(result))
            if journal is not None:
                journal.settle()
        except OutputFailed as exc:
            failure = exc
            lost += 1
            run.abandon()  # nothing more can be kept: nothing more is paid for
            return
        written += 1
        if not result.ok:
            failed += 1
            if len(reasons) < SHOWN_ERRORS:
                reasons.append(_reason(result))
        progress.update(written)

    try:
        try:
            for result in run:
                save(result)
        except InputChanged as exc:
            # Nothing more is read; what is in flight answers lines that had not changed.
            changed = exc
            run.stop()
            for result in run:
                save(result)
        except OutputFailed as exc:
            # The input's ledger could not be written: nothing more is read or sent, and what
            # is in flight is still written to the output, which may have room.
            ledger_failure = exc
            run.stop()
            for result in run:
                save(result)
    except KeyboardInterrupt:
        abandoned = True
        run.abandon()
    finally:
        # Every exit path (a second Ctrl-C, the grace over, SIGTERM, an error writing) first
        # saves what has finished, in whatever order: it is paid for, and a resumed run must
        # find it rather than send it again.
        try:
            for result in run.finished():
                save(result)
            place_due(None)
        finally:
            run.close()
            if journal is not None:
                journal.close()
            interrupts.uninstall()
            progress.close()
    wall = time.monotonic() - started
    print(format_table(backend.snapshot()))
    print(
        f"{written} line(s) written to {args.output} ({failed} error line(s)) in {wall:.1f}s"
        + (f"; {len(skip)} already there" if skip else "")
    )
    if reasons:
        print(
            f"{failed} line(s) ended in an error; the first {len(reasons)}:\n  "
            + "\n  ".join(reasons),
            file=sys.stderr,
        )
    again = (
        f"  {_resume_command(options, args.output)}\n(or just: comet-sync batch -o "
        f"{shlex.quote(args.output)} --resume; the options are kept in "
        f"{shlex.quote(state_path(args.output))})"
    )
    if failure is not None:
        print(
            f"comet-sync batch: {failure}. Stopped: the {written} line(s) written are whole"
            + (
                f"; {lost} finished result(s) could not be kept and will be sent again"
                if lost
                else ""
            )
            + f". Make room, then resume with\n{again}",
            file=sys.stderr,
        )
        return EXIT_OUTPUT_FAILED
    if ledger_failure is not None:
        print(
            f"comet-sync batch: {ledger_failure}. Stopped: the {written} line(s) written are "
            f"whole and kept. Make room, then resume with\n{again}",
            file=sys.stderr,
        )
        return EXIT_OUTPUT_FAILED
    if changed is not None:
        print(_refusal(changed, args.output), file=sys.stderr)
        return EXIT_USAGE
    if backend.failure is not None:
        print(
            f"comet-sync batch: {backend.failure}. Stopped: the {written} line(s) written are "
            f"whole and kept. Fix the workers, then resume with\n{again}",
            file=sys.stderr,
        )
        return EXIT_WORKERS_FAILED
    if interrupts.stopped or abandoned:
        print(
            f"interrupted by {interrupts.signal_name or 'SIGINT'}: resume with\n{again}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if resumed.errors:
        # Resuming finishes what was never done; it does not make old errors go away.
        hint = (
            f"; {resumed.retryable} may heal: add --retry-errors to send them again"
            if resumed.retryable
            else ""
        )
        print(
            f"{args.output} still holds {resumed.errors} error line(s) from earlier runs{hint}",
            file=sys.stderr,
        )
    return EXIT_FAILED_LINES if failed or resumed.errors else 0


def _refusal(changed: InputChanged, output: str) -> str:
    return (
        f"comet-sync batch: {changed}. Stopped before mixing answers to two inputs: resume "
        f"{output} with the input it was started with, or start a new output"
    )


def _reason(result: BatchResult) -> str:
    """``line N (id): why``, for the terminal."""
    message = str((result.error or {}).get("message", ""))
    where = f"line {result.line}"
    if message.startswith(where):
        message = message[len(where) :].lstrip(": ")
    named = f" ({result.custom_id})" if result.custom_id is not None else ""
    return f"{where}{named}: {message}"


class _Progress:
    """done/total, rate, 429s absorbed, ETA on a terminal; nothing otherwise. tqdm when it is
    installed (``comet-sync[progress]``), a plain line when not."""

    def __init__(
        self, total: int | None, snapshot: Callable[[], Snapshot], *, enabled: bool
    ) -> None:
        self.total = total
        self.snapshot = snapshot
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
        if now - self.last < 0.2 and (self.total is None or done < self.total):
            return
        self.last = now
        throttled = sum(s.throttled for s in self.snapshot().values())
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix({"429s": throttled}, refresh=True)
            return
        rate = done / max(now - self.started, 1e-9)
        if self.total is None:  # a pipe: no total to count down from
            sys.stderr.write(f"\r{done}  {rate:.1f}/s  429s absorbed: {throttled} ")
        else:
            eta = (self.total - done) / rate if rate > 0 else 0.0
            sys.stderr.write(
                f"\r{done}/{self.total}  {rate:.1f}/s  429s absorbed: {throttled}  ETA {eta:.0f}s "
            )
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


# -- argument types ----------------------------------------------------------------------------


def _add_fake(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--fake``, written once for every command that can run against the embedded server
    (``_connection`` is what it switches)."""
    parser.add_argument(
        "--fake",
        action="store_true",
        help=f"{verb} the embedded fake server (no key needed: try it offline)",
    )


def _positive_int(text: str) -> int:
    value: int = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value: int = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value: float = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value:g}")
    return value


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
