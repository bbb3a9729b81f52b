"""The fake server's HTTP side: one handler thread per connection, HTTP/1.1 keep-alive, whole
answers in one write, chunked event streams, and resets on demand."""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._answers import StreamPlan
    from ._server import FakeCometServer

__all__ = ["REASONS", "Handler", "Server", "chunk"]

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    524: "A Timeout Occurred",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The response goes out in one write and TCP_NODELAY is set, so no response waits on
    # Nagle's algorithm meeting the client's delayed ACK (~40 ms a call on loopback).
    disable_nagle_algorithm = True
    server: Server  # pyright: ignore[reportIncompatibleVariableOverride]  (ours is narrower)

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.fake._connection_opened(self.request)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read counters, not stderr

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def send_whole(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def send_stream(self, plan: StreamPlan, headers: Mapping[str, str]) -> None:
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Transfer-Encoding: chunked"]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        # A keep-alive comment first, as gateways send: clients must skip it.
        first = b": keep-alive\n\n"
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + chunk(first))
        for i, event in enumerate(plan.events):
            if plan.cut_after is not None and i >= plan.cut_after:
                self.reset()
                return
            if plan.error_after is not None and i >= plan.error_after:
                error = {
                    "error": {
                        "message": f"upstream failed mid-stream (request id: {plan.rid})",
                        "type": "upstream_error",
                        "code": "upstream_error",
                    }
                }
                self.wfile.write(chunk(b"data: " + json.dumps(error).encode() + b"\n\n"))
                self.wfile.write(b"0\r\n\r\n")
                return
            if plan.delay:
                time.sleep(plan.delay)
            self.wfile.write(chunk(event))
        if plan.cut_after is not None and plan.cut_after >= len(plan.events):
            self.reset()
            return
        if plan.done:
            self.wfile.write(chunk(b"data: [DONE]\n\n"))
        self.wfile.write(b"0\r\n\r\n")

    def reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: the client sees a reset.
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many client threads connect at once; a short accept queue would drop SYNs and cost
    # each dropped one a 1 s retransmit.
    request_queue_size = 256
    fake: FakeCometServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeout, test teardown) is normal here, not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        super().handle_error(request, client_address)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"
