"""A fake CometAPI server on loopback, for tests, demos and benchmarks.

It speaks the wire format of ``shared/cometapi.md`` over real HTTP/1.1 with keep-alive, limits
itself the way CometAPI's upstreams do (429 beyond a concurrency or rate limit), and fails on
demand. It counts what it saw so tests can check the client from the outside.

Thread safety: ``_lock`` guards the knobs, the fault queue, the token bucket and every counter;
it is never held while a handler sleeps or writes to a socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import socket
import struct
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable

__all__ = ["DEFAULT_MODELS", "FakeCometServer", "Fault", "ReceivedRequest", "ServerStats"]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "gemini-2.0-flash", "deepseek-chat")

_REASONS = {
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


@dataclass(frozen=True)
class Fault:
    """One scripted answer, used instead of the normal one for the next matching request.

    ``status`` with a JSON error body built from ``message``/``code`` (or ``body`` as given,
    a dict or raw text with ``content_type``); ``reset=True`` drops the connection without
    answering; ``delay`` sleeps first (to provoke timeouts); ``passthrough=True`` answers
    normally after the delay; ``headers`` are added; ``request_id_header=False`` leaves the
    request id only in the error message, as some CometAPI routes do. The ``stream_*`` fields
    spoil a streamed answer (which is otherwise normal).
    """

    @property
    def spoils_stream(self) -> bool:
        return (
            self.stream_cut_after is not None
            or self.stream_error_after is not None
            or self.stream_no_done
        )

    status: int = 500
    message: str | None = None
    code: str | None = None
    body: Any = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    reset: bool = False
    delay: float = 0.0
    passthrough: bool = False
    request_id_header: bool = True
    # Streams only: cut the connection after this many chunks; send an error event after
    # this many; end without data: [DONE].
    stream_cut_after: int | None = None
    stream_error_after: int | None = None
    stream_no_done: bool = False
    route: str | None = None  # only requests to this path ("/chat/completions"); None: any


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the server saw it, with what it answered."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    status: int | None  # None when the connection was reset
    connection: int
    started: float
    ended: float
    query: str = ""  # the query string, without its "?"


@dataclass(frozen=True)
class ServerStats:
    requests: int
    max_in_flight: int
    connections_opened: int
    statuses: dict[int | None, int]
    attempts: dict[str, int]  # by the last user message's text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The response goes out in one write and TCP_NODELAY is set, so no response waits on
    # Nagle's algorithm meeting the client's delayed ACK (~40 ms a call on loopback).
    disable_nagle_algorithm = True
    server: _Server  # pyright: ignore[reportIncompatibleVariableOverride]  (ours is narrower)

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
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def send_stream(self, plan: _StreamPlan, headers: Mapping[str, str]) -> None:
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Transfer-Encoding: chunked"]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        # A keep-alive comment first, as gateways send: clients must skip it.
        first = b": keep-alive\n\n"
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + _chunk(first))
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
                self.wfile.write(_chunk(b"data: " + json.dumps(error).encode() + b"\n\n"))
                self.wfile.write(b"0\r\n\r\n")
                return
            if plan.delay:
                time.sleep(plan.delay)
            self.wfile.write(_chunk(event))
        if plan.cut_after is not None and plan.cut_after >= len(plan.events):
            self.reset()
            return
        if plan.done:
            self.wfile.write(_chunk(b"data: [DONE]\n\n"))
        self.wfile.write(b"0\r\n\r\n")

    def reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: the client sees a reset.
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


class _Server(ThreadingHTTPServer):
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


class FakeCometServer:
    """A CometAPI look-alike on ``127.0.0.1`` (port 0: the OS picks a free one).

    >>> from comet_sync import CometClient
    >>> from comet_sync.testing import FakeCometServer
    >>> with FakeCometServer(max_in_flight=4) as server:
    ...     client = CometClient(api_key="test", base_url=server.base_url)
    ...     client.chat.completions.create(
    ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    Knobs (constructor or :meth:`configure`, at any time): ``latency`` seconds per request;
    ``max_in_flight`` answers 429 past that many concurrent requests; ``rps`` and ``burst``
    a token bucket answering 429 when empty; ``retry_after`` (seconds) adds a ``Retry-After``
    header to those 429s; ``outage`` a status (say 503) that every request gets while set;
    ``error_every`` n: every n-th request fails, in turn with a 503, a 500 and a dropped
    connection; ``stream_chunks`` how many content chunks a streamed answer has (default: one
    a word), ``stream_delay`` seconds between them; ``api_key`` if set, any other bearer token
    gets a 401.
    Scripted failures: :meth:`fail`, :meth:`reset_next`, :meth:`respond_next`.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        max_in_flight: int | None = None,
        rps: float | None = None,
        burst: float | None = None,
        retry_after: float | None = None,
        outage: int | None = None,
        stream_chunks: int | None = None,
        stream_delay: float = 0.0,
        error_every: int | None = None,
        api_key: str | None = None,
        models: Iterable[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.latency = latency
        self.max_in_flight = max_in_flight
        self.rps = rps
        self.burst = burst
        self.retry_after = retry_after
        self.outage = outage
        self.stream_chunks = stream_chunks
        self.error_every = error_every
        self.stream_delay = stream_delay
        self.api_key = api_key
        self.models: tuple[str, ...] = tuple(models)
        self._host, self._port = host, port
        self._faults: deque[Fault] = deque()
        self._ids = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._open_sockets: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_counters()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeCometServer:
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-cometapi",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._open_sockets)
        for sock in sockets:  # wake handler threads parked on idle keep-alive connections
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeCometServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running; call start()")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to give a client as ``base_url`` (ends in ``/v1``)."""
        return f"http://{self._host}:{self.port}/v1"

    # -- knobs -------------------------------------------------------------------------------

    def configure(self, **knobs: Any) -> None:
        """Change knobs while running, e.g. ``configure(rps=20)`` to drop the rate limit."""
        allowed = {
            "latency",
            "max_in_flight",
            "rps",
            "burst",
            "retry_after",
            "outage",
            "stream_chunks",
            "stream_delay",
            "error_every",
            "api_key",
        }
        unknown = set(knobs) - allowed
        if unknown:
            raise TypeError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for name, value in knobs.items():
                setattr(self, name, value)
            self._tokens: float | None = None  # refill the bucket under the new rate

    def fail(self, status: int, times: int = 1, **fault: Any) -> None:
        """Answer the next ``times`` requests with ``status`` (see :class:`Fault`)."""
        self._push(Fault(status=status, **fault), times)

    def reset_next(self, times: int = 1, **fault: Any) -> None:
        """Drop the connection of the next ``times`` requests without answering."""
        self._push(Fault(reset=True, **fault), times)

    def delay_next(self, seconds: float, times: int = 1, **fault: Any) -> None:
        """Answer the next ``times`` requests normally, but only after ``seconds``."""
        self._push(Fault(delay=seconds, passthrough=True, **fault), times)

    def respond_next(
        self,
        body: Any,
        *,
        status: int = 200,
        times: int = 1,
        content_type: str | None = None,
        **fault: Any,
    ) -> None:
        """Answer the next ``times`` requests with this body (a dict as JSON, or text)."""
        self._push(Fault(status=status, body=body, content_type=content_type, **fault), times)

    @property
    def pending_faults(self) -> int:
        """Scripted answers not yet used."""
        with self._lock:
            return len(self._faults)

    def _push(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    # -- counters ----------------------------------------------------------------------------

    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(
                requests=self._requests,
                max_in_flight=self._max_in_flight,
                connections_opened=self._connections,
                statuses=dict(self._statuses),
                attempts=dict(self._attempts),
            )

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request seen since the last :meth:`reset_stats`, in arrival order."""
        with self._lock:
            return list(self._received)

    def reset_stats(self) -> None:
        with self._lock:
            self._reset_counters()

    def _reset_counters(self) -> None:
        self._requests = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._connections = 0
        self._statuses: Counter[int | None] = Counter()
        self._attempts: Counter[str] = Counter()
        # Bounded so a long benchmark does not grow without limit.
        self._received: deque[ReceivedRequest] = deque(maxlen=100_000)
        self._tokens = None
        self._bucket_time = 0.0

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._connections += 1
            self._open_sockets.add(sock)
        return next(self._conn_ids)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    # -- handling ----------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        started = self._clock()
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = h.path.split("?", 1)[0]
        route = path[3:] if path.startswith("/v1/") else path
        rid = f"fake-{next(self._ids):08d}"
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._attempts[_attempt_key(body)] += 1
            over_limit = self._over_limit_locked()
            fault = self._take_fault_locked(route, h.command)
            if fault is None and self.error_every and self._requests % self.error_every == 0:
                fault = _ROTATING_FAULTS[(self._requests // self.error_every) % 3]
            latency = self.latency
        try:
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            elif latency and not over_limit:
                time.sleep(latency)
            if fault is not None and fault.reset:
                self._log(h, path, body, None, started)
                h.reset()
                return
            status, payload, ctype, headers = self._answer(h, route, body, rid, fault, over_limit)
            if fault is None or fault.request_id_header:
                headers = {"X-Oneapi-Request-Id": rid, **headers}
            # Logged before the answer leaves, so a test that reads the log right after its
            # call returns always finds the request there.
            self._log(h, path, body, status, started)
            if isinstance(payload, _StreamPlan):
                h.send_stream(payload, headers)
            else:
                h.send_whole(status, payload, ctype, headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _log(self, h: _Handler, path: str, body: Any, status: int | None, started: float) -> None:
        ended = self._clock()
        with self._lock:
            self._statuses[status] += 1
            self._received.append(
                ReceivedRequest(
                    method=h.command,
                    path=path,
                    headers=dict(h.headers.items()),
                    body=body,
                    query=h.path.partition("?")[2],
                    status=status,
                    connection=h.connection_id,
                    started=started,
                    ended=ended,
                )
            )

    def _over_limit_locked(self) -> str | None:
        if self.max_in_flight is not None and self._in_flight > self.max_in_flight:
            return f"too many requests in flight (limit {self.max_in_flight})"
        if self.rps is not None:
            now = self._clock()
            capacity = self.burst if self.burst is not None else max(1.0, self.rps / 10)
            if self._tokens is None:
                self._tokens, self._bucket_time = capacity, now
            self._tokens = min(capacity, self._tokens + (now - self._bucket_time) * self.rps)
            self._bucket_time = now
            if self._tokens < 1:
                return f"rate limit {self.rps:g} requests/s exceeded"
            self._tokens -= 1
        return None

    def _take_fault_locked(self, route: str, method: str) -> Fault | None:
        if method != "POST" and not self._faults:
            return None
        for i, fault in enumerate(self._faults):
            if fault.route is None or fault.route == route:
                del self._faults[i]
                return fault
        return None

    def _answer(
        self,
        h: _Handler,
        route: str,
        body: Any,
        rid: str,
        fault: Fault | None,
        over_limit: str | None,
    ) -> tuple[int, bytes | _StreamPlan, str, dict[str, str]]:
        if fault is not None and not fault.passthrough and not fault.spoils_stream:
            return _fault_answer(fault, rid)
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid token", rid, code="")
        outage = self.outage
        if outage is not None:
            return _error(outage, "no available channel, try again later", rid, code="")
        if over_limit is not None:
            headers = {}
            if self.retry_after is not None:
                headers["Retry-After"] = f"{self.retry_after:g}"
            status, payload, ctype, _ = _error(
                429,
                f"upstream load saturated, please try again later: {over_limit}",
                rid,
                code="rate_limit",
            )
            return status, payload, ctype, headers
        if h.command == "GET" and route == "/models":
            return _json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": m,
                            "object": "model",
                            "created": 1_700_000_000,
                            "owned_by": "fake",
                            "supported_endpoint_types": ["openai"],
                        }
                        for m in self.models
                    ],
                },
            )
        if h.command == "POST" and route == "/chat/completions":
            return self._chat(body, rid, fault)
        if h.command == "POST" and route == "/embeddings":
            return _embeddings(body, rid)
        if h.command == "POST" and route == "/responses":
            return self._responses(body, rid, fault)
        return _error(404, f"Invalid URL ({h.command} {h.path})", rid, code="")

    def _chat(
        self, body: Any, rid: str, fault: Fault | None
    ) -> tuple[int, bytes | _StreamPlan, str, dict[str, str]]:
        if not isinstance(body, dict):
            return _error(400, "request body is not a JSON object", rid, code="invalid_request")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            # CometAPI answers a missing messages field with a 500, code invalid_request.
            return _error(500, "field messages is required", rid, code="invalid_request")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "model is required", rid, code="invalid_request")
        text = _last_user_text(messages)
        content = f"echo: {text}"
        prompt_tokens = sum(len(_text_of(m).split()) for m in messages if isinstance(m, dict))
        completion_tokens = len(content.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if body.get("stream"):
            return (
                200,
                self._stream_plan(body, rid, content, usage, fault),
                "text/event-stream",
                {"Cache-Control": "no-cache"},
            )
        return _json(
            200,
            {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )

    def _responses(
        self, body: Any, rid: str, fault: Fault | None
    ) -> tuple[int, bytes | _StreamPlan, str, dict[str, str]]:
        """The Responses API: ``input`` (text or messages) echoed back as one output message;
        streamed as typed events (``event:`` lines), ending with ``response.completed`` and
        no ``[DONE]``, as OpenAI's does."""
        if not isinstance(body, dict) or body.get("input") in (None, "", []):
            return _error(400, "input is required", rid, code="invalid_request")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "model is required", rid, code="invalid_request")
        given = body["input"]
        text = given if isinstance(given, str) else _last_user_text(given)
        content = f"echo: {text}"
        usage = {
            "input_tokens": len(text.split()),
            "output_tokens": len(content.split()),
            "total_tokens": len(text.split()) + len(content.split()),
        }
        message = {
            "type": "message",
            "id": f"msg-{rid}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": content, "annotations": []}],
        }
        response = {
            "id": f"resp-{rid}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [message],
            "usage": usage,
        }
        if not body.get("stream"):
            return _json(200, response)
        pieces = [
            f"{word} " if i + 1 < len(content.split()) else word
            for i, word in enumerate(content.split())
        ]
        events: list[dict[str, Any]] = [
            {
                "type": "response.created",
                "response": {**response, "status": "in_progress", "output": [], "usage": None},
            }
        ]
        events += [
            {
                "type": "response.output_text.delta",
                "item_id": f"msg-{rid}",
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
            }
            for piece in pieces
        ]
        events += [
            {
                "type": "response.output_text.done",
                "item_id": f"msg-{rid}",
                "output_index": 0,
                "content_index": 0,
                "text": content,
            },
            {"type": "response.completed", "response": response},
        ]
        return (
            200,
            _StreamPlan(
                events=[f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events],
                delay=self.stream_delay,
                cut_after=fault.stream_cut_after if fault else None,
                error_after=fault.stream_error_after if fault else None,
                done=False,
                rid=rid,
            ),
            "text/event-stream",
            {"Cache-Control": "no-cache"},
        )

    def _stream_plan(
        self,
        body: dict[str, Any],
        rid: str,
        content: str,
        usage: dict[str, int],
        fault: Fault | None,
    ) -> _StreamPlan:
        n = self.stream_chunks if self.stream_chunks is not None else len(content.split())
        n = max(1, n)
        size = -(-len(content) // n)  # ceil: n pieces of the content
        pieces = [content[i * size : (i + 1) * size] for i in range(n)]
        head = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }
        events: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            events.append(
                {
                    **head,
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                    ],
                    "obfuscation": "x",
                }
            )
        events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            events.append({**head, "choices": [], "usage": {**usage, "latency_checkpoint": 1}})
        return _StreamPlan(
            events=[b"data: " + json.dumps(e).encode() + b"\n\n" for e in events],
            delay=self.stream_delay,
            cut_after=fault.stream_cut_after if fault else None,
            error_after=fault.stream_error_after if fault else None,
            done=not (fault and fault.stream_no_done),
            rid=rid,
        )


_ROTATING_FAULTS = (
    Fault(503, message="no available channel for this model"),
    Fault(500, message="upstream error"),
    Fault(reset=True),
)


@dataclass(frozen=True)
class _StreamPlan:
    events: list[bytes]
    delay: float
    cut_after: int | None
    error_after: int | None
    done: bool
    rid: str


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _embeddings(body: Any, rid: str) -> tuple[int, bytes, str, dict[str, str]]:
    if not isinstance(body, dict) or "input" not in body:
        return _error(400, "input is required", rid, code="invalid_request")
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    given = body.get("dimensions")
    dims = given if isinstance(given, int) else 8
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else json.dumps(item)
        tokens += len(text.split())
        digest = hashlib.sha256(text.encode()).digest()
        vector = [round((digest[j % len(digest)] - 128) / 128, 6) for j in range(dims)]
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return _json(
        200,
        {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def _fault_answer(fault: Fault, rid: str) -> tuple[int, bytes, str, dict[str, str]]:
    headers = dict(fault.headers)
    if fault.body is None:
        message = fault.message or _REASONS.get(fault.status, "error")
        status, payload, ctype, _ = _error(fault.status, message, rid, code=fault.code or "")
    elif isinstance(fault.body, (dict, list)):
        status, payload, ctype, _ = _json(fault.status, fault.body)
    else:
        status = fault.status
        payload = str(fault.body).encode("utf-8")
        ctype = "text/html; charset=utf-8"
    return status, payload, fault.content_type or ctype, headers


def _error(
    status: int, message: str, rid: str, *, code: str
) -> tuple[int, bytes, str, dict[str, str]]:
    return _json(
        status,
        {
            "error": {
                "message": f"{message} (request id: {rid})",
                "type": "comet_api_error",
                "param": "",
                "code": code,
            }
        },
    )


def _json(status: int, data: Any) -> tuple[int, bytes, str, dict[str, str]]:
    return status, json.dumps(data).encode("utf-8"), "application/json", {}


def _text_of(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message)
    return ""


def _attempt_key(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        return _last_user_text(body["messages"])
    return ""
