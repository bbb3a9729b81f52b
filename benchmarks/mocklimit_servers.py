"""A third-party rate-limit mock (mocklimit, from PyPI) behind the interface of servers.LimitServer.

benchmarks/servers.py has limiters modelled on real APIs, but they are still written here.
mocklimit (on PyPI, MIT) was written by someone else:
sliding-window, fixed-window and token-bucket limiters, scoped by API key, with rate headers in
OpenAI's, Anthropic's or the IETF draft's style. This module runs it so that
benchmarks/ratelimit.py can use it instead of a LimitServer::

    with MockLimitServer(**PRESETS["ml-sliding"]) as server:
        ...  # point a client at server.base_url
        print(server.stats(), server.records[:3])

It is optional: ``pip install mocklimit`` (0.6.0; Python >= 3.11; pulls in fastapi and
uvicorn). Without it, constructing a MockLimitServer raises RuntimeError.

How it works:

- The OpenAPI spec and the rate config are generated from the constructor's arguments and
  written as JSON (which YAML parsers read) into a temporary directory. This module itself
  needs the standard library only.
- mocklimit runs as a subprocess (``mocklimit serve``) on a free 127.0.0.1 port. It uses the
  console script next to ``sys.executable``, so it comes from the benchmark's own environment.
  It runs in another process, so it does not share the client's GIL.
- mocklimit keeps no per-request log. So the clients do not talk to it directly: they talk to a
  small forwarding proxy in this process, also on 127.0.0.1. The proxy passes each request
  through unchanged (status, headers and body copied verbatim) and appends a
  ``servers.Record`` for it. This gives ratelimit.py its ``records`` and ``stats()``. The proxy
  adds one loopback hop (well under a millisecond) to every request.

What mocklimit differs in from servers.LimitServer:

- The ``-limit`` headers carry the count per the limiter's OWN window. They are never
  converted to per minute. With ``window_seconds=1``, "50" means 50 per second, but a client
  that reads OpenAI's or Anthropic's -limit header as RPM reads it as 50 per minute. Use
  ``window_seconds=60`` (or a bucket with refill_rate = capacity / 60) when that matters.
- Resets:
  - openai: Go durations (``970ms``, ``1s``, ``59.999s``).
  - anthropic: RFC 3339, truncated to the whole second, so up to 1 s early.
  - ietf: ``0.6s``, with an "s" suffix, which a parser that expects a bare number rejects.
    IETF limit headers carry no ``;w=`` window.
  - sliding window: the reset is the time until the OLDEST request in the window expires.
  - token bucket: the reset is the time until the bucket is FULL.
- Only ONE retry header is sent on a 429: ``Retry-After`` (seconds, rounded up) or
  ``retry-after-ms`` (milliseconds, rounded up). LimitServer's "ms" style sends both.
- Fixed windows are aligned to multiples of ``window_seconds`` of the Unix clock. A burst that
  crosses an edge can therefore get up to twice the limit.
- There is no echo of the model or the prompt. The body is a fixed dummy: ``usage`` is
  prompt 20 + completion 10 = ``total_tokens`` 30. There is no streaming, no concurrency cap,
  no injected failures, and no limit changes at run time, so ``set_limits`` and ``outage``
  raise NotImplementedError.
- Latency (``latency``, default U(20, 60) ms as LimitServer's) is added to successful
  responses only. A 429 is answered at once, as LimitServer also does.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

try:
    from servers import Record, Stats, job_key
except ModuleNotFoundError:  # imported from elsewhere than benchmarks/: find servers.py beside us
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from servers import Record, Stats, job_key

__all__ = ["PRESETS", "PRESET_RATES", "MockLimitServer", "find_mocklimit", "preset_ideal"]

STRATEGIES = ("sliding_window", "fixed_window", "token_bucket")
HEADER_STYLES = ("openai", "anthropic", "ietf")
_INSTALL_HINT = "pip install mocklimit (mocklimit 0.6.0 needs Python >= 3.11)"

# Header names per style, and the reset format and error body that go with them.
_HEADER_NAMES = {
    "openai": (
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ),
    "anthropic": (
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ),
    "ietf": ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"),
}
_DEFAULT_RESET = {"openai": "go_duration", "anthropic": "rfc3339", "ietf": "relative_seconds"}
_ERROR_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "ietf": "openai"}
_RESET_FORMATS = ("go_duration", "relative_seconds", "rfc3339")
_RETRY_AFTER = {  # our name -> (mocklimit's default header, unit)
    "seconds": ("retry-after", "seconds"),
    "ms": ("retry-after-ms", "milliseconds"),
    "milliseconds": ("retry-after-ms", "milliseconds"),
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",  # recomputed from the body actually forwarded
}


def find_mocklimit() -> list[str]:
    """The command that runs mocklimit in this interpreter's environment.

    This is the ``mocklimit`` console script next to ``sys.executable``. If that script is
    missing but the package can be imported, it is ``python -m mocklimit``. Raises
    RuntimeError when mocklimit is not installed at all.
    """
    # Not resolved: a venv's python is often a symlink to the base interpreter, and the
    # script lives beside the link.
    bindir = Path(sys.executable).parent
    for name in ("mocklimit", "mocklimit.exe"):
        script = bindir / name
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script)]
    if sys.version_info >= (3, 11):
        import importlib.util

        if importlib.util.find_spec("mocklimit") is not None:
            return [sys.executable, "-m", "mocklimit"]
    raise RuntimeError(
        f"mocklimit is not installed for {sys.executable} "
        f"(Python {sys.version_info.major}.{sys.version_info.minor}): {_INSTALL_HINT}"
    )


def _free_port() -> int:
    # The port could be taken before mocklimit binds it. If that happens, __enter__ tries again.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openapi_spec() -> dict[str, Any]:
    """A minimal POST /v1/chat/completions. mocklimit answers with a dummy built from the
    schema: an enum gives its first value, a plain integer gives 1, a string "mock_string"."""

    def const(value: Any) -> dict[str, Any]:
        kind = "integer" if isinstance(value, int) else "string"
        return {"type": kind, "enum": [value]}

    completion = {
        "type": "object",
        "properties": {
            "id": const("chatcmpl-mocklimit"),
            "object": const("chat.completion"),
            "created": {"type": "integer"},
            "model": const("mocklimit"),
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": const(0),
                        "message": {
                            "type": "object",
                            "properties": {
                                "role": const("assistant"),
                                "content": const("ok"),
                            },
                        },
                        "finish_reason": const("stop"),
                    },
                },
            },
            # Kept as written only while the rate config has no `resources`: with them,
            # mocklimit replaces usage by {resource: cost}.
            "usage": {
                "type": "object",
                "properties": {
                    "prompt_tokens": const(20),
                    "completion_tokens": const(10),
                    "total_tokens": const(30),
                },
            },
        },
    }
    return {
        "openapi": "3.0.0",
        "info": {"title": "comet_sync benchmark: chat completions", "version": "1"},
        "servers": [{"url": "http://127.0.0.1/v1"}],  # its path is the routes' prefix
        "paths": {
            "/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "responses": {
                        "200": {
                            "description": "a chat completion",
                            "content": {"application/json": {"schema": completion}},
                        }
                    },
                }
            }
        },
    }


class MockLimitServer:
    """mocklimit behind a recording proxy, usable where ratelimit.py uses a LimitServer.

    A window limiter (sliding_window, fixed_window) admits `limit` requests per
    `window_seconds`. A token_bucket holds `capacity` and refills at `refill_rate` per second.
    Each API key (Bearer token) has its own limiter; with ``scope="ip"``, each client address
    has one.

    `headers` is one of:
    - "openai": x-ratelimit-{limit,remaining,reset}-requests, with Go-duration resets.
    - "anthropic": anthropic-ratelimit-requests-{limit,remaining,reset}, with RFC 3339 resets.
    - "ietf": ratelimit-{limit,remaining,reset}, with "0.6s" resets.
    - None: no rate headers.
    `reset_format` overrides the style's reset format.

    `retry_after` ("seconds" | "ms" | None) picks the one retry header sent on 429s:
    Retry-After in whole seconds, or retry-after-ms. None keeps mocklimit's own default,
    Retry-After in seconds, because mocklimit always sends one.

    `latency` (seconds, a number or a (min, max) range) is added to successful responses only.

    Construction only validates the arguments. Everything is started in ``__enter__`` and
    stopped in ``__exit__``.
    """

    def __init__(
        self,
        strategy: str = "sliding_window",
        *,
        limit: int | None = None,
        window_seconds: float = 1.0,
        capacity: int | None = None,
        refill_rate: float | None = None,
        headers: str | None = "openai",
        reset_format: str | None = None,
        retry_after: str | None = "seconds",
        retry_after_header: str | None = None,
        error_template: str | None = "auto",
        scope: str = "api_key",
        latency: float | tuple[float, float] = (0.02, 0.06),
        startup_timeout: float = 15.0,
    ) -> None:
        if strategy not in STRATEGIES:  # mocklimit would silently take a fixed window
            raise ValueError(f"strategy: {strategy!r} is not one of {STRATEGIES}")
        if strategy == "token_bucket":
            if capacity is None or refill_rate is None:
                raise ValueError("token_bucket needs capacity and refill_rate")
            if capacity < 1 or refill_rate <= 0:
                raise ValueError("capacity must be >= 1 and refill_rate > 0")
        else:
            if limit is None or limit < 1 or window_seconds <= 0:
                raise ValueError(f"{strategy} needs limit >= 1 and window_seconds > 0")
        if headers is not None and headers not in HEADER_STYLES:
            raise ValueError(f"headers: {headers!r} is not None or one of {HEADER_STYLES}")
        if reset_format is not None and reset_format not in _RESET_FORMATS:
            raise ValueError(f"reset_format: {reset_format!r} is not one of {_RESET_FORMATS}")
        if retry_after is not None and retry_after not in _RETRY_AFTER:
            raise ValueError(f"retry_after: {retry_after!r} is not None, 'seconds' or 'ms'")
        if scope not in ("api_key", "ip"):
            raise ValueError(f"scope: {scope!r} is not 'api_key' or 'ip'")
        low, high = (latency, latency) if isinstance(latency, (int, float)) else latency
        if not 0 <= low <= high:
            raise ValueError(f"latency: bad range {latency!r}")

        self._command = find_mocklimit()  # RuntimeError when it is not installed
        self.strategy, self.limit, self.window_seconds = strategy, limit, window_seconds
        self.capacity, self.refill_rate = capacity, refill_rate
        self.headers, self.retry_after, self.scope = headers, retry_after, scope
        self.reset_format = reset_format or _DEFAULT_RESET.get(headers or "", "relative_seconds")
        self.retry_after_header = retry_after_header
        if error_template == "auto":
            error_template = _ERROR_PROVIDER.get(headers or "", "openai")
        self.error_template = error_template
        self.latency = (float(low), float(high))
        self.startup_timeout = startup_timeout

        self.records: list[Record] = []
        self.outages: list[tuple[float, float, int]] = []  # always empty: no injected outages
        self._lock = threading.Lock()
        self._statuses: Counter[int] = Counter()
        self._peak_cache: tuple[int, int] = (0, 0)  # (records counted, max in flight)
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._proxy: _ProxyServer | None = None
        self.upstream_port: int | None = None

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MockLimitServer:
        """A server made from ``PRESETS[name]``, with any of its arguments overridden."""
        return cls(**{**PRESETS[name], **overrides})

    # -- configuration -------------------------------------------------------------------

    def rate_config(self) -> dict[str, Any]:
        """The mocklimit rate config (written as JSON, which is valid YAML)."""
        if self.strategy == "token_bucket":
            rule: dict[str, Any] = {"capacity": self.capacity, "refill_rate": self.refill_rate}
        else:
            rule = {"limit": self.limit, "window_seconds": self.window_seconds}
        rule["dimension"] = "requests"  # no `resources`: each request costs 1
        if self.headers is not None:
            name_limit, name_remaining, name_reset = _HEADER_NAMES[self.headers]
            rule["headers"] = {
                "limit": name_limit,
                "remaining": name_remaining,
                "reset": name_reset,
            }
        header, unit = _RETRY_AFTER[self.retry_after or "seconds"]
        policy: dict[str, Any] = {
            "strategy": self.strategy,
            "scope": self.scope,
            "limits": [rule],
            "format": {
                "reset": self.reset_format,
                "retry_after": {"header": self.retry_after_header or header, "unit": unit},
            },
        }
        if self.error_template:
            policy["error_template"] = {"provider": self.error_template}
        endpoint: dict[str, Any] = {"methods": ["POST"], "policy": "chat"}
        low, high = (round(x * 1000) for x in self.latency)
        if high > 0:
            endpoint["timing"] = {"base_ms": [low, high]}
        return {"policies": {"chat": policy}, "endpoints": {"/chat/completions": endpoint}}

    # -- life cycle ----------------------------------------------------------------------

    def __enter__(self) -> MockLimitServer:
        try:
            self._dir = tempfile.mkdtemp(prefix="mocklimit-")
            spec = os.path.join(self._dir, "openapi.yaml")
            config = os.path.join(self._dir, "limits.yaml")
            Path(spec).write_text(json.dumps(_openapi_spec(), indent=1))
            Path(config).write_text(json.dumps(self.rate_config(), indent=1))
            self._log = open(os.path.join(self._dir, "mocklimit.log"), "wb")
            for attempt in range(3):  # a port taken between _free_port() and the bind: again
                if self._start(spec, config, last=attempt == 2):
                    break
            self._proxy = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
            self._proxy.owner = self
            threading.Thread(
                target=self._proxy.serve_forever, args=(0.05,), daemon=True, name="mocklimit-proxy"
            ).start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self, spec: str, config: str, *, last: bool) -> bool:
        """Start mocklimit and wait until it answers. False: it died (the port?), try again."""
        port = _free_port()
        args = ["serve", "--spec", spec, "--rate-config", config]
        args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
        self._proc = subprocess.Popen(
            [*self._command, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # uvicorn's access log, a line per request
            stderr=self._log,
            cwd=self._dir,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if last:
                    raise RuntimeError(
                        f"mocklimit exited ({self._proc.returncode}): {self._tail()}"
                    )
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
                try:
                    conn.request("GET", "/mocklimit/routes")
                    response = conn.getresponse()
                    response.read()
                finally:
                    conn.close()
                if response.status == 200:
                    self.upstream_port = port
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"mocklimit did not answer within {self.startup_timeout:g} s: {self._tail()}"
        )

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace").strip()
        return " | ".join(text.splitlines()[-5:]) or "(no output)"

    def __exit__(self, *exc: object) -> None:
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
            self._proxy = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()  # SIGTERM: uvicorn shuts down cleanly
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- what ratelimit.py reads ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._proxy is not None, "use the server as a context manager"
        return f"http://127.0.0.1:{self._proxy.server_address[1]}/v1"

    @property
    def upstream_url(self) -> str:
        """mocklimit itself, without the recording proxy in between."""
        assert self.upstream_port is not None, "use the server as a context manager"
        return f"http://127.0.0.1:{self.upstream_port}/v1"

    def stats(self) -> Stats:
        """As LimitServer.stats(). max_in_flight is the most 200-answered requests whose
        [arrived, ended] overlap, as the proxy saw them."""
        with self._lock:
            records, statuses = list(self.records), dict(self._statuses)
        jobs = len({r.key for r in records})
        return Stats(len(records), statuses, jobs, self._max_in_flight(records), [])

    def _max_in_flight(self, records: list[Record]) -> int:
        counted, peak = self._peak_cache
        if counted == len(records):
            return peak
        events = sorted(
            (t, step)
            for r in records
            if r.status == 200
            for t, step in ((r.arrived, 1), (r.ended, -1))
        )  # at a tie an end (-1) sorts first: touching intervals do not overlap
        level = peak = 0
        for _, step in events:
            level += step
            peak = max(peak, level)
        self._peak_cache = (len(records), peak)
        return peak

    def server_stats(self) -> dict[str, Any]:
        """mocklimit's own counters, {route: {scope: {total_requests, total_429s}}}."""
        assert self.upstream_port is not None, "use the server as a context manager"
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=5)
        try:
            conn.request("GET", "/mocklimit/stats")
            stats: dict[str, Any] = json.loads(conn.getresponse().read())
            return stats
        finally:
            conn.close()

    def set_limits(self, limits: Any) -> None:
        raise NotImplementedError("mocklimit's limits are fixed when it starts")

    def outage(self, status: int, seconds: float) -> None:
        raise NotImplementedError("mocklimit cannot inject outages")

    def _record(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)
            self._statuses[record.status] += 1


# -- the recording proxy ------------------------------------------------------------------------


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # as servers._HTTPServer: a dropped SYN costs a client 1 s
    owner: MockLimitServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is normal in a benchmark


class _ProxyHandler(BaseHTTPRequestHandler):
    """One client connection (one thread). Each request goes to mocklimit over this
    connection's own keep-alive connection. Status, headers and body come back verbatim,
    apart from the hop-by-hop headers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # and each answer in one write, as servers._Handler
    server: _ProxyServer
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        owner = self.server.owner
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):
            conn, fresh = self._upstream, self._upstream is None
            if conn is None:
                assert owner.upstream_port is not None
                conn = http.client.HTTPConnection("127.0.0.1", owner.upstream_port, timeout=120)
                self._upstream = conn
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    conn.close()
                    self._upstream = None
                return response.status, response.reason, response.getheaders(), data
            except (http.client.HTTPException, OSError):
                # uvicorn closes idle keep-alive connections after 5 s: a stale connection
                # fails before the request reaches it, so one retry on a new one is safe.
                conn.close()
                self._upstream = None
                if fresh or attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _handle(self) -> None:
        body = self._read_body()
        arrived = time.monotonic()
        model = key = ""
        if self.command == "POST":
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                model, key = str(parsed.get("model", "")), job_key(parsed)
        try:
            status, reason, headers, data = self._forward(body)
        except (http.client.HTTPException, OSError) as exc:
            status, reason = 502, "Bad Gateway"
            error = {"error": {"message": f"mocklimit: {exc!r}", "type": "proxy"}}
            data = json.dumps(error).encode()
            headers = [("Content-Type", "application/json")]
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
        head.append(f"Content-Length: {len(data)}")
        if self.close_connection:
            head.append("Connection: close")
        if self.command == "POST" and self.path.split("?")[0] == "/v1/chat/completions":
            # Recorded BEFORE the answer is written, so that a client which has its answer
            # finds it in `records`. `ended` is therefore when mocklimit's answer was in, a few
            # microseconds before the client gets it.
            why = "limit" if status == 429 else "proxy" if status == 502 else ""
            self.server.owner._record(Record(arrived, time.monotonic(), model, key, status, why))
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        except OSError:
            self.close_connection = True

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _handle


# -- presets ------------------------------------------------------------------------------------

# Constructor arguments: MockLimitServer(**PRESETS[name]) or MockLimitServer.preset(name).
PRESETS: dict[str, dict[str, Any]] = {
    "ml-sliding": {
        "strategy": "sliding_window",
        "limit": 50,
        "window_seconds": 1.0,
        "headers": "openai",
        "retry_after": "ms",
    },
    "ml-fixed": {
        "strategy": "fixed_window",
        "limit": 40,
        "window_seconds": 1.0,
        "headers": "openai",
    },
    "ml-bucket": {
        "strategy": "token_bucket",
        "capacity": 60,
        "refill_rate": 20.0,
        "headers": "openai",
    },
    "ml-anthropic": {
        "strategy": "sliding_window",
        "limit": 40,
        "window_seconds": 1.0,
        "headers": "anthropic",
    },
    "ml-ietf": {
        "strategy": "fixed_window",
        "limit": 40,
        "window_seconds": 1.0,
        "headers": "ietf",
    },
}

# Each preset's sustained rate (requests/s) and the burst it admits at once (the window's
# limit, or the bucket's capacity; a fixed window can admit up to twice that across an edge).
PRESET_RATES: dict[str, dict[str, float]] = {
    "ml-sliding": {"rate": 50.0, "burst": 50},
    "ml-fixed": {"rate": 40.0, "burst": 40},
    "ml-bucket": {"rate": 20.0, "burst": 60},
    "ml-anthropic": {"rate": 40.0, "burst": 40},
    "ml-ietf": {"rate": 40.0, "burst": 40},
}


def preset_ideal(name: str, *, burst: bool = False) -> Callable[[int], float]:
    """The ideal time for n jobs, for a Scenario's `ideal`.

    By default it is n / rate, the convention of ratelimit.py's own scenarios. With
    burst=True it is (n - burst) / rate, which is the strict lower bound. It matters for
    ml-bucket: with a capacity of 60, 300 jobs can finish in 12 s rather than 15 s.
    """
    rate, first = PRESET_RATES[name]["rate"], PRESET_RATES[name]["burst"]
    if burst:
        return lambda n: max(0.0, n - first) / rate
    return lambda n: n / rate
