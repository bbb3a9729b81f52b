"""Rate-limited fake chat servers that behave like real APIs, for benchmarks and tests.

The project's own fake server (``comet_sync.testing``) was designed together with the client's
limiter, so passing against it proves little. These limiters are modelled on what real APIs do
instead: sliding and fixed windows, token buckets of requests or of estimated tokens (the way
OpenAI and Azure charge prompt + ``max_tokens`` at admission), concurrency caps; headers in
OpenAI's, Anthropic's or the IETF draft's style; Retry-After rounded up to whole seconds; and
failures that have nothing to do with rate (random 429s without headers, 503s, outages).

Standard library only and no import of comet_sync, so tests can load it too::

    with LimitServer([SlidingWindow(50, 1.0)], headers="openai") as server:
        ...  # point a client at server.base_url
        print(server.stats())
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# -- limiters: each decides admission at arrival, under its own lock -----------------------


@dataclass
class Quota:
    """A limiter's state as rate headers report it."""

    unit: str  # "requests" or "tokens"
    limit: int  # per `window` seconds (the IETF policy's q and w)
    window: float
    per_minute: int  # what OpenAI's and Anthropic's -limit headers carry (RPM, TPM)
    remaining: int  # in the limiter's own enforcement unit, now
    reset: float  # seconds until the limiter would be full (or clear) again


class Limiter:
    unit = "requests"

    def __init__(self, *, announced: bool = True) -> None:
        self._lock = threading.Lock()
        # False: it binds but no header tells of it (an unannounced per-second window behind
        # a per-day header, as Groq's requests header is).
        self.announced = announced

    def cost(self, tokens: int) -> int:
        return tokens if self.unit == "tokens" else 1

    def wait(self, now: float, cost: int) -> float:
        """Seconds until a request of this cost would be admitted; 0.0 means now."""
        raise NotImplementedError

    def take(self, now: float, cost: int, until: float) -> None:
        """Charge an admitted request; `until` is when the server will have answered it."""

    def release(self, until: float) -> None:
        """An admitted request has been answered (only a concurrency cap cares)."""

    def quota(self, now: float) -> Quota | None:
        return None  # a concurrency cap has nothing a rate header could say


class SlidingWindow(Limiter):
    """At most `limit` admitted in any trailing `window` seconds: a log of admission times."""

    def __init__(self, limit: int, window: float, *, announced: bool = True) -> None:
        super().__init__(announced=announced)
        self.limit, self.window = limit, window
        self._log: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._log and self._log[0] <= now - self.window:
            self._log.popleft()

    def wait(self, now: float, cost: int) -> float:
        with self._lock:
            self._prune(now)
            if len(self._log) < self.limit:
                return 0.0
            return self._log[-self.limit] + self.window - now

    def take(self, now: float, cost: int, until: float) -> None:
        with self._lock:
            self._log.append(now)

    def quota(self, now: float) -> Quota:
        with self._lock:
            self._prune(now)
            clear = self._log[-1] + self.window - now if self._log else 0.0
            left = self.limit - len(self._log)
        rpm = round(self.limit * 60 / self.window)
        return Quota(self.unit, self.limit, self.window, rpm, left, clear)


class FixedWindow(Limiter):
    """At most `limit` per window; counts reset at multiples of `window` (of the clock)."""

    def __init__(self, limit: int, window: float, *, announced: bool = True) -> None:
        super().__init__(announced=announced)
        self.limit, self.window = limit, window
        self._index, self._count = -1, 0

    def _roll(self, now: float) -> float:
        index = math.floor(now / self.window)
        if index != self._index:
            self._index, self._count = index, 0
        return (index + 1) * self.window - now  # until the next reset

    def wait(self, now: float, cost: int) -> float:
        with self._lock:
            until_reset = self._roll(now)
            return 0.0 if self._count < self.limit else until_reset

    def take(self, now: float, cost: int, until: float) -> None:
        with self._lock:
            self._roll(now)
            self._count += 1

    def quota(self, now: float) -> Quota:
        with self._lock:
            until_reset = self._roll(now) if self._count else 0.0
            left = self.limit - self._count
        rpm = round(self.limit * 60 / self.window)
        return Quota(self.unit, self.limit, self.window, rpm, left, until_reset)


class TokenBucket(Limiter):
    """A bucket of `burst` refilled continuously at `rate` per second; a request costs 1."""

    def __init__(self, rate: float, burst: float, *, announced: bool = True) -> None:
        super().__init__(announced=announced)
        self.rate, self.burst = rate, burst
        self._level, self._last = float(burst), time.monotonic()

    def _refill(self, now: float) -> None:
        if now > self._last:  # `now` was read before the lock: another thread may be ahead
            self._level = min(self.burst, self._level + (now - self._last) * self.rate)
            self._last = now

    def wait(self, now: float, cost: int) -> float:
        with self._lock:
            self._refill(now)
            if cost > self.burst:
                return math.inf  # can never be admitted: "request too large"
            return max(0.0, (cost - self._level) / self.rate)

    def take(self, now: float, cost: int, until: float) -> None:
        with self._lock:
            self._refill(now)
            self._level -= cost

    def quota(self, now: float) -> Quota:
        with self._lock:
            self._refill(now)
            left, full = math.floor(self._level), (self.burst - self._level) / self.rate
        # Its own count: `burst` units, refilled over burst/rate seconds (what a mock counting
        # in its own window says); per minute, rate x 60.
        return Quota(
            self.unit, round(self.burst), self.burst / self.rate, round(self.rate * 60), left, full
        )


class TokenRate(TokenBucket):
    """A bucket of TOKENS: a request costs its estimated prompt tokens plus its max_tokens,
    charged before answering, the way Azure and OpenAI estimate TPM."""

    unit = "tokens"

    def __init__(
        self, tokens_per_second: float, burst_tokens: float, *, announced: bool = True
    ) -> None:
        super().__init__(tokens_per_second, burst_tokens, announced=announced)


class SlidingTokens(Limiter):
    """At most `limit` TOKENS admitted in any trailing `window` seconds (estimated at
    admission, as TokenRate charges them)."""

    unit = "tokens"

    def __init__(self, limit: int, window: float, *, announced: bool = True) -> None:
        super().__init__(announced=announced)
        self.limit, self.window = limit, window
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0

    def _prune(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.window:
            self._used -= self._log.popleft()[1]

    def wait(self, now: float, cost: int) -> float:
        with self._lock:
            self._prune(now)
            if cost > self.limit:
                return math.inf
            if self._used + cost <= self.limit:
                return 0.0
            need, freed = self._used + cost - self.limit, 0
            for at, spent in self._log:  # until enough of the oldest leave the window
                freed += spent
                if freed >= need:
                    return at + self.window - now
            return self.window

    def take(self, now: float, cost: int, until: float) -> None:
        with self._lock:
            self._log.append((now, cost))
            self._used += cost

    def quota(self, now: float) -> Quota:
        with self._lock:
            self._prune(now)
            clear = self._log[-1][0] + self.window - now if self._log else 0.0
            left = self.limit - self._used
        per_minute = round(self.limit * 60 / self.window)
        return Quota(self.unit, self.limit, self.window, per_minute, left, clear)


class DayQuota(FixedWindow):
    """Requests per day, as Groq's x-ratelimit-limit-requests counts: it never binds in a
    benchmark's seconds; what binds is another, unannounced, limit."""

    def __init__(self, per_day: int) -> None:
        super().__init__(per_day, 86400.0)


class Concurrency(Limiter):
    """At most `n` admitted requests being processed at once."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self._ends: list[float] = []  # when each request in flight will have been answered

    def wait(self, now: float, cost: int) -> float:
        with self._lock:
            if len(self._ends) < self.n:
                return 0.0
            return max(0.001, min(self._ends) - now)  # the server knows when a slot frees

    def take(self, now: float, cost: int, until: float) -> None:
        with self._lock:
            self._ends.append(until)

    def release(self, until: float) -> None:
        with self._lock:
            self._ends.remove(until)


# -- helpers --------------------------------------------------------------------------------


def estimate_tokens(body: dict[str, Any]) -> int:
    """Characters of all message contents / 4 rounded up, plus max_tokens (16 if absent)."""
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # content parts: count the text ones
            chars += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens")) or 16
    return math.ceil(chars / 4) + int(max_tokens)


def job_key(body: dict[str, Any]) -> str:
    """The last user message's content: what identifies a job across its attempts."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content"))
    return ""


def go_duration(seconds: float) -> str:
    """Go's time.Duration style, as in OpenAI's reset headers: 641ms, 1s, 7.66s, 6m0s.
    Rounded up to the millisecond: a reset is never promised early."""
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def rfc3339_after(seconds: float) -> str:
    """A UTC timestamp `seconds` from now, whole seconds rounded up, as Anthropic sends."""
    moment = datetime.fromtimestamp(math.ceil(time.time() + seconds), timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# How a server writes its quotas, beyond the header names (`style`): what `limit` counts
# (`per`), how `reset` is written (`reset`), and whether `limit` is sent at all or lies.
PER = ("minute", "window")  # minute: OpenAI's documented RPM/TPM; window: its own count
RESETS = ("duration", "epoch", "seconds")  # Go duration; Unix time it ends; plain seconds


@dataclass(frozen=True)
class Convention:
    per: str = "minute"
    reset: str = "duration"
    send_limit: bool = True  # False: remaining and reset only
    claimed_limit: int | None = None  # a limit header that lies (claims this instead)

    def __post_init__(self) -> None:
        if self.per not in PER or self.reset not in RESETS:
            raise ValueError(f"unknown convention {self}")


MINUTE = Convention()
WINDOW = Convention(per="window")


def _reset_text(seconds: float, how: str) -> str:
    if how == "epoch":
        return str(math.ceil(time.time() + seconds))
    if how == "seconds":
        return f"{max(0.0, seconds):.3f}"
    return go_duration(seconds)


def rate_headers(
    style: str | None, quotas: list[Quota], convention: Convention = MINUTE
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for q in quotas:
        left = str(max(0, q.remaining))
        limit = q.per_minute if convention.per == "minute" else q.limit
        if convention.claimed_limit is not None:
            limit = convention.claimed_limit
        if style == "openai":
            if convention.send_limit:
                headers[f"x-ratelimit-limit-{q.unit}"] = str(limit)
            headers[f"x-ratelimit-remaining-{q.unit}"] = left
            headers[f"x-ratelimit-reset-{q.unit}"] = _reset_text(q.reset, convention.reset)
        elif style == "anthropic":
            if convention.send_limit:
                headers[f"anthropic-ratelimit-{q.unit}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{q.unit}-remaining"] = left
            headers[f"anthropic-ratelimit-{q.unit}-reset"] = rfc3339_after(q.reset)
    if style == "ietf" and quotas:
        names = {"requests": '"default"', "tokens": '"tokens"'}
        policy = [f"{names[q.unit]};q={q.limit};w={math.ceil(q.window)}" for q in quotas]
        state = [f"{names[q.unit]};r={max(0, q.remaining)};t={math.ceil(q.reset)}" for q in quotas]
        headers["RateLimit-Policy"], headers["RateLimit"] = ", ".join(policy), ", ".join(state)
    return headers


def error_body(message: str, type_: str, code: str | None = "rate_limit_exceeded") -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


UNAVAILABLE = {"error": {"message": "no available channel", "type": "comet_api_error", "code": ""}}
SATURATED = error_body("upstream saturated, please retry later", "comet_api_error")

# -- the server -----------------------------------------------------------------------------


@dataclass
class Record:
    arrived: float  # time.monotonic() when the body had been read
    ended: float  # after the answer was written
    model: str
    key: str  # the job: the last user message's content
    status: int
    why: str = ""  # for failures: "limit", "random", "first" or "outage"


@dataclass
class Stats:
    requests: int
    statuses: dict[int, int]
    jobs: int  # distinct job keys seen
    max_in_flight: int  # admitted requests being processed at once
    outages: list[tuple[float, float, int]] = field(default_factory=list)


@dataclass
class _Answer:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    why: str = ""
    until: float = 0.0  # admitted: when the answer is due
    chain: list[Limiter] = field(default_factory=list)  # admitted: the limiters to release


class LimitServer:
    """A chat-completions server on 127.0.0.1 with pluggable limiters and failure injectors.

    `limits`: a list of limiters for every model, or a dict model -> list with "*" for the
    models not listed (which share the "*" limiters; without "*" they are unlimited). A
    request must be admitted by all of its model's limiters; a refused one consumes nothing.
    """

    def __init__(
        self,
        limits: list[Limiter] | dict[str, list[Limiter]] | None = None,
        *,
        latency: float | tuple[float, float] = (0.02, 0.06),
        headers: str | None = None,  # None, "openai", "anthropic" or "ietf"
        convention: Convention = MINUTE,  # what the header values mean
        retry_after: str | None = "seconds",  # on limiter 429s: None, "seconds" or "ms"
        random_429: float = 0.0,
        random_503: float = 0.0,
        first_attempt_503: bool = False,
        first_429s: int = 0,  # each job's first attempts refused 429, whatever the rate
        first_429_retry_after: int = 6,  # ... with this Retry-After (seconds)
        seed: int = 0,
    ) -> None:
        if headers not in (None, "openai", "anthropic", "ietf"):
            raise ValueError(f"headers: unknown style {headers!r}")
        if retry_after not in (None, "seconds", "ms"):
            raise ValueError(f"retry_after: unknown style {retry_after!r}")
        self.set_limits(limits)
        self.latency = (latency, latency) if isinstance(latency, (int, float)) else latency
        self.headers, self.retry_after = headers, retry_after
        self.convention = convention
        self.random_429, self.random_503 = random_429, random_503
        self.first_attempt_503 = first_attempt_503
        self.first_429s, self.first_429_retry_after = first_429s, first_429_retry_after
        self._refused: Counter[str] = Counter()
        self.records: list[Record] = []
        self.outages: list[tuple[float, float, int]] = []  # (from, to, status), monotonic
        self._rng = random.Random(seed)
        # One lock for records, counters, the rng and the injectors; held over the whole
        # admission so several limiters admit (or refuse) a request as one.
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._statuses: Counter[int] = Counter()
        self._in_flight = self._max_in_flight = 0
        self._httpd: _HTTPServer | None = None

    def set_limits(self, limits: list[Limiter] | dict[str, list[Limiter]] | None) -> None:
        """Replace the limiters (a limit drop, say); requests in flight keep their old ones."""
        self.limits = {"*": limits} if isinstance(limits, list) else dict(limits or {})

    def outage(self, status: int, seconds: float) -> None:
        """Every request fails with `status` for `seconds` from now."""
        now = time.monotonic()
        with self._lock:
            self.outages.append((now, now + seconds, status))

    def __enter__(self) -> LimitServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        serve = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "use the server as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def stats(self) -> Stats:
        with self._lock:  # cheap (but for the job count), so a watcher can poll it often
            jobs = len({r.key for r in self.records})
            return Stats(
                len(self.records),
                dict(self._statuses),
                jobs,
                self._max_in_flight,
                list(self.outages),
            )

    # -- one request ---------------------------------------------------------------------

    def _serve(self, h: _Handler, body: dict[str, Any]) -> None:
        arrived = time.monotonic()
        model, key = str(body.get("model", "")), job_key(body)
        answer = self._decide(arrived, model, key, body)
        if answer.status == 200:
            # Sleep the latency, then free a concurrency slot BEFORE answering, so that the
            # client's next request cannot find the slot still taken.
            time.sleep(max(0.0, answer.until - time.monotonic()))
            for limiter in answer.chain:
                limiter.release(answer.until)
        h.send_json(answer.status, answer.payload, answer.headers)
        with self._lock:
            self.records.append(
                Record(arrived, time.monotonic(), model, key, answer.status, answer.why)
            )
            self._statuses[answer.status] += 1
            self._in_flight -= answer.status == 200

    def _decide(self, now: float, model: str, key: str, body: dict[str, Any]) -> _Answer:
        with self._lock:
            # Injected failures come first and are independent of rate: an outage, a job's
            # first attempt, upstream saturation. They carry no rate headers, as CometAPI's.
            for start, end, status in self.outages:
                if start <= now < end:
                    return _Answer(status, UNAVAILABLE, why="outage")
            if self.first_attempt_503 and key not in self._seen:
                self._seen.add(key)
                return _Answer(503, UNAVAILABLE, why="first")
            if self._refused[key] < self.first_429s:
                self._refused[key] += 1
                after = {"Retry-After": str(self.first_429_retry_after)}
                return _Answer(429, SATURATED, after, why="first")
            if self.random_503 and self._rng.random() < self.random_503:
                return _Answer(503, UNAVAILABLE, why="random")
            if self.random_429 and self._rng.random() < self.random_429:
                return _Answer(429, SATURATED, why="random")
            chain = self.limits.get(model, self.limits.get("*", []))
            tokens = estimate_tokens(body)
            wait, refuser = max(
                ((lim.wait(now, lim.cost(tokens)), lim) for lim in chain),
                key=lambda pair: pair[0],
                default=(0.0, None),
            )
            if refuser is None or wait <= 0:
                until = now + self._rng.uniform(*self.latency)
                for lim in chain:
                    lim.take(now, lim.cost(tokens), until)
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
                headers = rate_headers(self.headers, _quotas(chain, now), self.convention)
                return _Answer(200, _completion(model, key, tokens), headers, "", until, chain)
            headers = rate_headers(self.headers, _quotas(chain, now), self.convention)
            headers.update(self._retry_after(wait))
            return _Answer(429, _refusal(refuser, wait, tokens, model, now), headers, "limit")

    def _retry_after(self, wait: float) -> dict[str, str]:
        if self.retry_after is None or math.isinf(wait):
            return {}
        # Real servers round up to whole seconds, at least 1: a client that obeys waits long.
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        if self.retry_after == "ms":
            headers["retry-after-ms"] = str(math.ceil(wait * 1000))
        return headers


def _quotas(chain: list[Limiter], now: float) -> list[Quota]:
    """One quota per unit, from the first announced limiter of each: headers have one slot per
    unit."""
    quotas: dict[str, Quota] = {}
    for limiter in chain:
        if not limiter.announced:
            continue
        q = limiter.quota(now)
        if q is not None and q.unit not in quotas:
            quotas[q.unit] = q
    return list(quotas.values())


def _refusal(limiter: Limiter, wait: float, tokens: int, model: str, now: float) -> dict:
    unit, again = limiter.unit, f"Please try again in {go_duration(wait)}."
    q = limiter.quota(now)
    if q is None:  # a concurrency cap
        return error_body(f"Too many concurrent requests for {model}. {again}", unit)
    per = f"{unit} per min ({unit[0].upper()}PM): Limit {q.per_minute}"
    if math.isinf(wait):
        return error_body(f"Request too large for {model} on {per}, Requested {tokens}.", unit)
    used = f"Remaining {max(0, q.remaining)}, Requested {limiter.cost(tokens)}"
    return error_body(f"Rate limit reached for {model} on {per}, {used}. {again}", unit)


def _completion(model: str, key: str, prompt_tokens: int) -> dict[str, Any]:
    content = f"ok: {key[:40]}"
    completion_tokens = math.ceil(len(content) / 4)
    message = {"role": "assistant", "content": content}
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return {
        "id": f"chatcmpl-{random.getrandbits(48):012x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "usage": usage,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once; a dropped SYN costs 1 s
    owner: LimitServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is normal in a benchmark


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # TCP_NODELAY, and each answer in one write: otherwise Nagle's algorithm meets the
    # client's delayed ACK and every call pays ~40 ms on loopback.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] != "/v1/chat/completions":
            return self.do_GET()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send_json(400, error_body("body is not a JSON object", "invalid_request", None))
            return
        self.server.owner._serve(self, body)

    def do_GET(self) -> None:
        self.send_json(404, error_body(f"no route {self.path}", "invalid_request", None))

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        reason = self.responses.get(status, ("Status",))[0]
        head = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"x-request-id: req_{random.getrandbits(48):x}",
        ]
        head.extend(f"{k}: {v}" for k, v in (headers or {}).items())
        try:  # head and body in one write (see above)
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True
