"""The hostile servers of issue 11, measured: how long each hang lasts, how much memory each
flood holds, how many requests leave after each stop. Raw sockets (``tests/hostile.py``), real
time, one case after another in one run.

    .venv/bin/python benchmarks/hostile.py [--only NAME]

Prints one line per case: what the client did, and the figure. Linux only (it reads RSS from
/proc).
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import signal
import socket
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import comet_sync
from comet_sync import CometClient, ResponseCache
from tests.hostile import COMPLETION, Request, chunk_event, head, hostile

KEY = "sk-bench-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
MESSAGES = [{"role": "user", "content": "hi"}]
MiB = 1 << 20


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    Path("/proc/self/clear_refs").write_text("5")


def make(server: Any, **kwargs: Any) -> CometClient:
    kwargs.setdefault("api_key", KEY)
    return CometClient(base_url=server.base_url, **kwargs)


def outcome(call: Callable[[], Any]) -> tuple[float, str]:
    started = time.monotonic()
    try:
        call()
        what = "returned"
    except BaseException as exc:
        what = type(exc).__name__
    return time.monotonic() - started, what


# -- hangs -----------------------------------------------------------------------------------


def slow_body() -> str:
    def dribble(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(head("200 OK", "Content-Type: application/json", length=len(COMPLETION)))
        for byte in COMPLETION:
            if stop.wait(1.0):
                return False
            conn.sendall(bytes([byte]))
        return False

    with hostile(dribble) as server:
        client = make(server, timeout=2, total_timeout=5)
        took, what = outcome(lambda: client.chat.completions.create(model="m", messages=MESSAGES))
        client.close()
    return (
        f"200 whose body arrives 1 byte/s ({len(COMPLETION)} B), timeout=2 total=5: "
        f"{what} after {took:.2f}s"
    )


def keepalives(conn: socket.socket, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        conn.sendall(b": keep-alive\n\n")


def sse_comments_only() -> str:
    def comments(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(head("200 OK", "Content-Type: text/event-stream", "Connection: close"))
        keepalives(conn, stop)
        return False

    with hostile(comments) as server:
        client = make(server, timeout=2, total_timeout=5)
        took, what = outcome(
            lambda: client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        )
        client.close()
        sent = server.count
    return (
        f"SSE of keep-alive comments only, timeout=2 total=5: create(stream=True) {what} "
        f"after {took:.2f}s ({sent} attempts)"
    )


def sse_comments_after_first() -> str:
    def one_then_comments(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(head("200 OK", "Content-Type: text/event-stream", "Connection: close"))
        conn.sendall(chunk_event("first"))
        keepalives(conn, stop)
        return False

    with hostile(one_then_comments) as server:
        client = make(server, timeout=2, total_timeout=5)
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        next(stream)
        took, what = outcome(lambda: next(stream))
        client.close()
    return (
        f"SSE keep-alives after the first chunk, timeout=2 total=5: next() {what} after {took:.2f}s"
    )


def cache_waiters() -> str:
    def stuck(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        stop.wait(20)
        return False

    with hostile(stuck) as server:
        client = make(server, cache=ResponseCache())
        results: list[tuple[float, str]] = []

        def call() -> None:
            with comet_sync.deadline(2):
                results.append(
                    outcome(lambda: client.chat.completions.create(model="m", messages=MESSAGES))
                )

        threads = [threading.Thread(target=call) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        client.close()
        sent = server.count
    worst = max(t for t, _ in results)
    kinds = sorted({w for _, w in results})
    return (
        f"cache single-flight, leader stuck 20s, 10 callers in deadline(2): all ended "
        f"({', '.join(kinds)}) within {worst:.2f}s; {sent} request(s) sent"
    )


# -- memory ----------------------------------------------------------------------------------


def answer_of(body: bytes, status: str = "200 OK", *headers: str) -> Any:
    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(head(status, "Content-Type: application/json", *headers, length=len(body)))
        view = memoryview(body)
        for at in range(0, len(body), MiB):
            conn.sendall(view[at : at + MiB])
        return True

    return handle


def big_json() -> str:
    pad = b"x" * (50 * MiB)
    body = b'{"id":"c","object":"chat.completion","choices":[],"pad":"' + pad + b'"}'
    with hostile(answer_of(body)) as server:
        client = make(server)
        gc.collect()
        before = rss_mb()
        reset_peak()
        took, what = outcome(lambda: client.chat.completions.create(model="m", messages=MESSAGES))
        peak = peak_mb() - before
        client.close()
    return (
        f"50 MB JSON answer (under the 128 MiB cap): {what} in {took:.2f}s, peak +{peak:.0f} MB RSS"
    )


def big_error_body() -> str:
    page = b"<html>" + b"overloaded " * (50 * MiB // 11) + b"</html>"
    with hostile(answer_of(page, "503 Service Unavailable")) as server:
        client = make(server, max_retries=2, backoff_base=0.05, max_wait=0.1)
        gc.collect()
        before = rss_mb()
        try:
            client.chat.completions.create(model="m", messages=MESSAGES)
            exc: BaseException | None = None
        except comet_sync.APIError as caught:
            exc = caught
        gc.collect()
        held = rss_mb() - before
        size = len(pickle.dumps(exc))
        client.close()
        sent = server.count
    return (
        f"503 with a 50 MB body, {sent} attempts: exception holds +{held:.0f} MB RSS, "
        f"pickles to {size / 1024:.0f} KiB"
    )


def gzip_bomb() -> str:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * MiB
    bomb = b"".join(packer.compress(zeros) for _ in range(1024)) + packer.flush()
    with hostile(answer_of(bomb, "200 OK", "Content-Encoding: gzip")) as server:
        client = make(server)
        gc.collect()
        before = rss_mb()
        reset_peak()
        took, what = outcome(lambda: client.chat.completions.create(model="m", messages=MESSAGES))
        peak = peak_mb() - before
        client.close()
    return (
        f"{len(bomb) / MiB:.1f} MB gzip expanding to 1 GiB: {what} in {took:.2f}s, peak "
        f"+{peak:.0f} MB RSS"
    )


def sse_big_event() -> str:
    event = b"data: " + b'{"choices":[],"pad":"' + b"x" * (20 * MiB) + b'"}' + b"\n\n"

    def pieces(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(head("200 OK", "Content-Type: text/event-stream", "Connection: close"))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        view = memoryview(event)
        for at in range(0, len(event), 4096):
            conn.sendall(view[at : at + 4096])
        conn.sendall(b"data: [DONE]\n\n")
        return False

    with hostile(pieces) as server:
        client = make(server, max_event_bytes=32 * MiB)
        took, what = outcome(
            lambda: client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True
            ).get_final_completion()
        )
        client.close()
    return f"SSE: one 20 MB event sent in 4 KiB pieces: {what} in {took:.2f}s"


def close_delimited_stream() -> str:
    seen: list[float] = []

    def slow_rest(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(head("200 OK", "Content-Type: text/event-stream", "Connection: close"))
        conn.sendall(chunk_event("first"))
        stop.wait(2)
        conn.sendall(b"data: [DONE]\n\n")
        return False

    with hostile(slow_rest) as server:
        client = make(server)
        started = time.monotonic()
        with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
            for _ in stream:
                seen.append(time.monotonic() - started)
        client.close()
    return (
        f"stream without length or chunking, rest sent 2s later: first chunk after {seen[0]:.3f}s"
    )


# -- the key ---------------------------------------------------------------------------------


def key_with_newline() -> str:
    with hostile(answer_of(COMPLETION)) as server:
        _, what = outcome(lambda: make(server, api_key=KEY + "\n"))
        sent = server.count
    return f"key with a trailing newline: {what} at construction, {sent} requests sent"


# -- stops -----------------------------------------------------------------------------------


def slow(seconds: float) -> Any:
    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        if stop.wait(seconds):
            return False
        conn.sendall(
            head("200 OK", "Content-Type: application/json", length=len(COMPLETION)) + COMPLETION
        )
        return True

    return handle


def always_503(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
    body = b'{"error":{"message":"busy"}}'
    conn.sendall(head("503 Service Unavailable", length=len(body)) + body)
    return True


def after(server: Any, at: int, seconds: float = 2.0) -> int:
    time.sleep(seconds)
    return server.count - at


def close_with_submitted(handler: Any, label: str) -> str:
    with hostile(handler) as server:
        client = make(server)
        futures = [client.chat.completions.submit(model="m", messages=MESSAGES) for _ in range(50)]
        time.sleep(0.5)
        took, _ = outcome(client.close)
        more = after(server, server.count)
        cancelled = sum(f.cancelled() for f in futures)
    return (
        f"close() with 50 submit()ed calls ({label}): returned in {took:.2f}s, "
        f"{cancelled} cancelled, {more} requests after it"
    )


def close_with_waiting_creates() -> str:
    with hostile(slow(2)) as server:
        client = make(server, max_concurrency=5)
        threads = [
            threading.Thread(
                target=lambda: outcome(
                    lambda: client.chat.completions.create(model="m", messages=MESSAGES)
                )
            )
            for _ in range(50)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        took, _ = outcome(client.close)
        at = server.count
        for thread in threads:
            thread.join()
        more = after(server, at)
    return (
        f"close() while 50 direct create() calls wait for 5 slots: returned in {took:.2f}s, "
        f"{more} requests after it"
    )


def ctrl_c_in_map() -> str:
    # A shell starts background jobs with SIGINT ignored, and Python then leaves it so:
    # Ctrl-C's own handler, whatever started us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with hostile(always_503) as server:
        client = make(server)
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        started = time.monotonic()
        try:
            for _ in client.chat.completions.map(
                ({"model": "m", "messages": MESSAGES} for _ in range(1000)), return_exceptions=True
            ):
                pass
        except KeyboardInterrupt:
            pass
        took = time.monotonic() - started - 1.0
        more = after(server, server.count)
        closed, _ = outcome(client.close)
    return (
        f"Ctrl-C during map against an always-503 server: loop left {took:.2f}s after "
        f"the signal, {more} requests after it, close() {closed:.2f}s"
    )


def break_holding_iterator() -> str:
    with hostile(slow(0.1)) as server:
        client = make(server)
        it = client.chat.completions.map({"model": "m", "messages": MESSAGES} for _ in range(1000))
        for taken, _ in enumerate(it, 1):
            if taken == 10:
                break
        more = after(server, server.count, 5.0)
        it.close()
        client.close()
    return (
        f"break out of map while still holding the iterator: {more} requests in the "
        f"next 5s (max_workers={client.config.max_workers})"
    )


CASES = {
    "slow_body": slow_body,
    "sse_comments_only": sse_comments_only,
    "sse_comments_after_first": sse_comments_after_first,
    "cache_waiters": cache_waiters,
    "big_json": big_json,
    "big_error_body": big_error_body,
    "gzip_bomb": gzip_bomb,
    "sse_big_event": sse_big_event,
    "close_delimited_stream": close_delimited_stream,
    "key_with_newline": key_with_newline,
    "close_submitted_slow": lambda: close_with_submitted(slow(2), "2 s server"),
    "close_submitted_503": lambda: close_with_submitted(always_503, "always-503 server"),
    "close_waiting_creates": close_with_waiting_creates,
    "ctrl_c_in_map": ctrl_c_in_map,
    "break_holding_iterator": break_holding_iterator,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(CASES))
    args = parser.parse_args()
    for name, case in CASES.items():
        if args.only and name != args.only:
            continue
        print(f"{name}: {case()}", flush=True)


if __name__ == "__main__":
    main()
