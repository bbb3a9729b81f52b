"""A raw-socket HTTP server that misbehaves on purpose: not the project's fake server, which
agrees with the client by construction, but bytes written by hand, as a broken gateway would.

Each connection runs ``handler(conn, request)`` on its own thread, once per request on it (so
keep-alive works when the handler leaves the connection usable). ``stop`` is set when the
server closes, so a handler that stalls "forever" ends with the test.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable


@dataclass
class Request:
    head: bytes
    body: bytes
    arrived: float = 0.0  # time.monotonic() when the server had read it

    @property
    def line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")


Handler = Callable[[socket.socket, Request, threading.Event], bool]


class HostileServer:
    """``handler`` returns True to keep the connection for another request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.stop = threading.Event()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.2)
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(30)
        try:
            while not self.stop.is_set():
                request = _read_request(conn)
                if request is None:
                    return
                with self._lock:
                    request.arrived = time.monotonic()
                    self.requests.append(request)
                if not self.handler(conn, request, self.stop):
                    return
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        # Wakes the accept() the accepter is blocked in (a close alone does not: it waited out
        # its 0.2 s timeout, at the end of every test).
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._accepter.join(2)
        for thread in self._threads:
            thread.join(2)


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Request(head=head, body=body)


@contextmanager
def hostile(handler: Handler) -> Iterator[HostileServer]:
    server = HostileServer(handler)
    try:
        yield server
    finally:
        server.close()


def head(status: str = "200 OK", *headers: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


COMPLETION = (
    b'{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
)


def chunk_event(text: str) -> bytes:
    return (
        'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
        f'"delta":{{"content":"{text}"}},"finish_reason":null}}]}}\n\n'
    ).encode()


def answer(body: bytes = COMPLETION, status: str = "200 OK", *headers: str) -> Handler:
    """A well-formed answer with a length, on a connection kept alive."""

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(
            head(status, "Content-Type: application/json", *headers, length=len(body)) + body
        )
        return True

    return handle


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll until ``predicate()`` holds; fail the test (never hang it) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or predicate}")
        time.sleep(0.01)
