"""A fake CometAPI server on loopback, for tests, demos and benchmarks.

It speaks CometAPI's wire format (OpenAI's, with CometAPI's error bodies and request ids) over
real HTTP/1.1 with keep-alive, limits itself the way CometAPI's upstreams do (429 beyond a
concurrency or rate limit), and fails on demand. It counts what it saw so tests can check the
client from the outside.

This module is the server's face: its knobs, its counters, and the dispatch of each request.
The rest is split by concern: ``_handler`` (HTTP), ``_faults`` (scripted failures),
``_limits`` (its own rate limits) and ``_answers`` (canned answers).

Thread safety: ``_lock`` guards the knobs, the fault queue, the token bucket and every counter;
it is never held while a handler sleeps or writes to a socket.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable

from ._answers import (
    Answer,
    StreamPlan,
    StreamSettings,
    attempt_key,
    chat_answer,
    embeddings_answer,
    error_answer,
    model_answer,
    models_answer,
    responses_answer,
)
from ._faults import ROTATING_FAULTS, Fault, fault_answer
from ._handler import Handler, Server
from ._limits import ServerLimits

__all__ = ["DEFAULT_MODELS", "FakeCometServer", "Fault", "ReceivedRequest", "ServerStats"]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "gemini-2.0-flash", "deepseek-chat")


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


# The knobs configure() may change on a running server (host, port and models are fixed when
# it starts); the command line's options pass these on by the same names.
LIVE_KNOBS = frozenset(
    {
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
)


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
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_counters()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeCometServer:
        server = Server((self._host, self._port), Handler)
        server.fake = self
        self._server = server
        # stop() waits for the serving loop to see it, which it looks for between polls: at
        # 0.05 s that was 25 ms a stop on average, a large share of a test suite's time.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
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
        unknown = set(knobs) - LIVE_KNOBS
        if unknown:
            raise TypeError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for name, value in knobs.items():
                setattr(self, name, value)
            self._limits.reset()  # refill the bucket under the new rate

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
        self._limits = ServerLimits()

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._connections += 1
            self._open_sockets.add(sock)
        return next(self._conn_ids)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    # -- handling ----------------------------------------------------------------------------

    def _handle(self, h: Handler) -> None:
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
            self._attempts[attempt_key(body)] += 1
            over_limit = self._limits.over(
                in_flight=self._in_flight,
                max_in_flight=self.max_in_flight,
                rps=self.rps,
                burst=self.burst,
                now=self._clock(),
            )
            fault = self._take_fault_locked(route, h.command)
            if fault is None and self.error_every and self._requests % self.error_every == 0:
                fault = ROTATING_FAULTS[(self._requests // self.error_every) % 3]
            latency = self.latency
        counted = True  # in self._in_flight, until the answer leaves
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
            # As OpenAI and Azure do: the caller's own id back, so it can tell its answer.
            own = h.headers.get("X-Client-Request-Id")
            if own:
                headers = {"X-Client-Request-Id": own, **headers}
            # Logged before the answer leaves, so a test that reads the log right after its
            # call returns always finds the request there.
            self._log(h, path, body, status, started)
            if isinstance(payload, StreamPlan):
                h.send_stream(payload, headers)
            else:
                # A whole answer stops counting as in flight before it is written: once written
                # the client may read it, give its slot to another caller and send again
                # before this thread runs on, and the count would show one request too many.
                self._left_flight()
                counted = False
                h.send_whole(status, payload, ctype, headers)
        finally:
            if counted:
                self._left_flight()

    def _left_flight(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _log(self, h: Handler, path: str, body: Any, status: int | None, started: float) -> None:
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
        h: Handler,
        route: str,
        body: Any,
        rid: str,
        fault: Fault | None,
        over_limit: str | None,
    ) -> Answer:
        if fault is not None and not fault.passthrough and not fault.spoils_stream:
            return fault_answer(fault, rid)
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return error_answer(401, "invalid token", rid, code="")
        outage = self.outage
        if outage is not None:
            return error_answer(outage, "no available channel, try again later", rid, code="")
        if over_limit is not None:
            headers = {}
            if self.retry_after is not None:
                headers["Retry-After"] = f"{self.retry_after:g}"
            status, payload, ctype, _ = error_answer(
                429,
                f"upstream load saturated, please try again later: {over_limit}",
                rid,
                code="rate_limit",
            )
            return status, payload, ctype, headers
        stream = StreamSettings(chunks=self.stream_chunks, delay=self.stream_delay)
        if h.command == "GET" and route == "/models":
            return models_answer(self.models)
        if h.command == "GET" and route.startswith("/models/"):
            # The rest of the path, slashes and all ("org/model"), percent-decoded.
            return model_answer(self.models, urllib.parse.unquote(route[len("/models/") :]))
        if h.command == "POST" and route == "/chat/completions":
            return chat_answer(body, rid, fault, stream)
        if h.command == "POST" and route == "/embeddings":
            return embeddings_answer(body, rid)
        if h.command == "POST" and route == "/responses":
            return responses_answer(body, rid, fault, stream)
        return error_answer(404, f"Invalid URL ({h.command} {h.path})", rid, code="")
