"""HTTP transport: one ``requests`` session, every attempt bounded in time and in size.

The environment is read once, when the transport is built, for the base URL: the proxy
(``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, ``NO_PROXY``) and the CA bundle
(``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``). ``requests.Session.request`` would read them,
and ``~/.netrc``, again on every call (about a third of a bare call's cost), and a ``.netrc``
entry for the host would even replace our ``Authorization`` header. So each attempt is a
prepared request handed straight to the session's adapter (its urllib3 pool), and ``.netrc``
is never read: the API key is the only credential. Cookies are not kept (an API call has
none to keep).

requests' read timeout bounds each socket read, not an attempt: a body sent a byte a second, or
an event stream of keep-alive comments, never trips it. So every attempt here is an
:class:`Attempt` with a wall-clock deadline, watched by one :class:`Watchdog` thread per
transport that shuts the attempt's socket down when its time is up (or when its scope is
abandoned): the thread blocked reading it wakes at once and raises
:class:`APITimeoutError` (or :class:`ClientClosedError`). The socket is found through our own
urllib3 connection class, which hands it to the attempt of the thread sending on it.

Bodies are read by :class:`Exchange`, undecoded off the wire and decompressed here, chunk by
chunk with a cap on the decoded size, so a compressed bomb stops at the cap instead of filling
memory, and a stream without a length is read as it arrives.

Thread safety: the session is built once and never mutated afterwards; urllib3's pool is
thread-safe. The watchdog's ``_lock`` guards its set of attempts and nothing else; an attempt's
own ``_lock`` guards its socket and reason. Sockets are shut down outside every lock.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, Callable

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from .._cancel import Scope
from .._exceptions import (
    ERROR_BODY_LIMIT,
    APIResponseValidationError,
    CometError,
    ResponseSnapshot,
    json_may_hold,
    scrub,
    scrub_headers,
    scrub_json,
)
from .error_map import (
    ABANDONED,
    TIMED_OUT,
    body_too_large,
    corrupt_body,
    crossed_answer,
    cut_error,
    read_error,
    safe_cause,
    send_error,
    unasked_encoding,
)

__all__ = ["CLIENT_REQUEST_ID", "Attempt", "Exchange", "Transport"]

# Our name for each call, sent with it (OpenAI's header name). A server or proxy that echoes it
# lets the transport check that an answer is this call's own.
CLIENT_REQUEST_ID = "X-Client-Request-Id"

# The pool holds one connection per in-flight request and a few spare, so reaching the
# concurrency limit never makes urllib3 discard a connection ("Connection pool is full").
POOL_HEADROOM = 4
# One read off the socket; also the most a decompressor may produce per step.
READ_SIZE = 64 * 1024
# After a stream's end mark, what may be left to read for its connection to be reused: the
# chunked encoding's last bytes, normally already in the socket buffer.
REST_BYTES = 64 * 1024
REST_SECONDS = 0.25
# Only what we decode ourselves is offered; a server sending anything else breaks the protocol.
ACCEPT_ENCODING = "gzip, deflate"
# Read past what is quoted of a body, so that a key straddling the quote's end is scrubbed whole
# before the quote is cut (room for every escaped form of a long key).
QUOTE_MARGIN = 4096
# Informational answers read past before the answer. A server may send 102 Processing now and
# then while it works (one a few seconds at most); more than this many is a server in a loop,
# and the attempt fails instead of reading status lines until its deadline.
MAX_INFORMATIONAL = 100


# -- attempts and the watchdog ------------------------------------------------------------------


class Attempt:
    """One request on the wire: its socket once connected, and when it must end."""

    __slots__ = (
        "_lock",
        "_sock",
        "budget",
        "ceiling",
        "deadline",
        "done",
        "reason",
        "status",
        "unregister",
        "watchdog",
    )

    def __init__(self, watchdog: Watchdog, deadline: float, budget: float) -> None:
        self._lock = threading.Lock()
        self.unregister: Callable[[], None] | None = None
        self._sock: socket.socket | None = None
        self.watchdog: Watchdog = watchdog
        self.deadline: float = deadline  # time.monotonic(); a stream's idle bound moves it
        self.ceiling: float = deadline  # the call's own end, which no idle bound passes
        self.budget: float = budget  # for messages: the seconds it was given
        self.reason: str | None = None  # why it was cut
        # The answer's status once its status line was read: an answer whose head then could
        # not be framed still reached the server's far side, and a 2xx was processed there.
        self.status: int | None = None
        self.done: bool = False

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            cut = self.reason is not None
        if cut:
            _shutdown(sock)

    def cut(self, reason: str) -> None:
        """End it from another thread: the reader blocked on its socket wakes and raises."""
        with self._lock:
            if self.done or self.reason is not None:
                return
            self.reason = reason
            sock = self._sock
        _shutdown(sock)

    def rearm(self, seconds: float) -> None:
        """Move the deadline to ``seconds`` from now, never past the call's own end."""
        self.deadline = min(time.monotonic() + seconds, self.ceiling)
        self.watchdog.moved(self.deadline)

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._sock = None
            unregister, self.unregister = self.unregister, None
        if unregister is not None:
            unregister()
        self.watchdog.forget(self)


class Watchdog:
    """One daemon thread that cuts attempts whose deadline has passed. Started lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Two conditions on one lock: the thread waits on _changed, close() on _idle, so that
        # an attempt ending (every call) never wakes the thread.
        self._changed = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._attempts: set[Attempt] = set()
        self._thread: threading.Thread | None = None
        self._planned = math.inf  # when the thread will next look
        self._closed = False

    def watch(self, deadline: float, budget: float) -> Attempt:
        attempt = Attempt(self, deadline, budget)
        with self._lock:
            self._attempts.add(attempt)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="comet_sync-watchdog", daemon=True
                )
                self._thread.start()
            if deadline < self._planned:
                self._changed.notify()
        return attempt

    def moved(self, deadline: float) -> None:
        """A deadline moved: wake the thread if it now comes before the thread would look."""
        if deadline < self._planned:  # unlocked read: at worst one needless wake-up
            with self._lock:
                self._changed.notify()

    def forget(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts.discard(attempt)
            if not self._attempts:
                self._idle.notify_all()

    def active(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every attempt to end; whether they did."""
        end = time.monotonic() + timeout
        with self._lock:
            while self._attempts:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        """End the thread (the transport is closed: no attempt will come)."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                due = [a for a in self._attempts if a.deadline <= now]
                later = [a.deadline for a in self._attempts if a.deadline > now]
                self._planned = min(later, default=math.inf)
                if not due:
                    # Bounded, so a deadline moved earlier without a notify is still seen.
                    self._changed.wait(min(self._planned - now, 60.0))
                    continue
            for attempt in due:
                attempt.cut(TIMED_OUT)
                self.forget(attempt)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # socket.socket's own shutdown, even on an SSLSocket: SSL's would tear down its TLS state
    # under the thread reading it. This wakes that thread's recv with EOF. (OSError: closed.)
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Response(http.client.HTTPResponse):
    """http.client's answer, reading past every informational answer.

    http.client skips only ``100 Continue``: a ``102 Processing`` or ``103 Early Hints`` (CDNs
    and gateways send them) was taken for the answer, an answer with no body, so the connection
    went back to the pool with the real answer still to come on it, and the next request sent
    on that connection read it as its own. Here every 1xx but 101 is read past, its header block
    discarded. 101 (a protocol switch we never ask for) stays the answer and its connection is
    closed, never reused: what follows it on the socket is not HTTP we can frame.
    """

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(MAX_INFORMATIONAL + 1):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                attempt: Attempt | None = getattr(_SENDING, "attempt", None)
                if attempt is not None:
                    attempt.status = status
                return version, status, reason
            http.client.parse_headers(self.fp)  # the informational answer's headers, dropped
        raise http.client.HTTPException(
            f"more than {MAX_INFORMATIONAL} informational (1xx) answers before the answer"
        )

    def begin(self) -> None:
        super().begin()
        if self.status < 200:
            self.will_close = True  # http.client then closes the connection, not the pool
        # Header lines http.client could not parse are dropped here: urllib3 would log them
        # whole at WARNING ("Failed to parse headers"), and they are bytes a server chose,
        # the API key among them if it echoes it. We read no header that did not parse.
        if self.msg.defects or self.msg.get_payload():
            self.msg.defects.clear()
            self.msg.set_payload("")


# The attempt being sent on this thread, for the connection class to hand its socket to.
_SENDING = threading.local()


class _WatchedConnectionMixin:
    sock: Any
    response_class: type[http.client.HTTPResponse] = _Response

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt: Attempt | None = getattr(_SENDING, "attempt", None)
        if attempt is not None and attempt.reason is not None:
            # Cut (the scope abandoned) while it was on its way here: not one byte goes out.
            raise ConnectionAbortedError(f"the attempt was cut before sending ({attempt.reason})")
        super().request(*args, **kwargs)  # type: ignore[misc]
        if attempt is not None:
            attempt.attach(self.sock)


class _HTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection  # pyright: ignore[reportAssignmentType]


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection  # pyright: ignore[reportAssignmentType]


class _Adapter(HTTPAdapter):
    """requests' adapter, with connections whose sockets our attempts can reach."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


# -- the transport -----------------------------------------------------------------------------


class Transport:
    """Sends one HTTP attempt. Retries are the caller's: urllib3's own stay off."""

    def __init__(
        self, *, pool_size: int, user_agent: str, base_url: str, secret: str | None
    ) -> None:
        self._secret = secret  # scrubbed out of every answer as it arrives (see Exchange)
        session = requests.Session()
        session.trust_env = False  # read once, below
        # total=0: urllib3 must never retry on its own, or attempts would multiply with ours.
        adapter = _Adapter(
            pool_connections=4,
            pool_maxsize=pool_size + POOL_HEADROOM,
            max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._session = session
        self._adapter = adapter
        self._base_headers = {
            "User-Agent": user_agent,
            "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "keep-alive",
        }
        self._proxies: dict[str, str] = get_environ_proxies(base_url)
        self._verify: bool | str = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._hooks: dict[str, list[Any]] = {"response": []}
        self.watchdog: Watchdog = Watchdog()

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float | None, float | None],
        budget: float | None,
        scope: Scope | None = None,
    ) -> Exchange:
        """Send, and return once the answer's head has arrived; its body is read through the
        :class:`Exchange`, within the same ``budget`` (seconds, None for no bound). Abandoning
        ``scope`` cuts the attempt."""
        seconds = math.inf if budget is None else max(budget, 0.0)
        attempt = self.watchdog.watch(time.monotonic() + seconds, seconds)
        what = f"{method} {url}"
        if scope is not None:
            attempt.unregister = scope.add_on_abandon(partial(attempt.cut, ABANDONED))
            if attempt.reason is not None:
                # The scope was abandoned between the caller's last look and now (a stop on
                # another thread): send nothing.
                attempt.finish()
                raise cut_error(attempt.reason, attempt.budget, what)
        prepared = requests.PreparedRequest()
        prepared.method = method
        # Our URLs are already canonical: a checked base URL, a fixed route, an encoded query.
        prepared.url = url
        prepared.headers = CaseInsensitiveDict({**self._base_headers, **headers})
        prepared.body = body
        if body is not None or method == "POST":
            prepared.headers["Content-Length"] = str(len(body) if body is not None else 0)
        prepared.hooks = self._hooks
        _SENDING.attempt = attempt
        failure: tuple[CometError, BaseException | None] | None = None
        try:
            # Redirects are never followed (the adapter does not): one means a wrong base
            # URL, and following it would turn a POST into a GET.
            response = self._adapter.send(
                prepared,
                stream=True,
                timeout=timeout,  # (connect, read) seconds
                verify=self._verify,
                proxies=self._proxies,
            )
        except requests.RequestException as exc:
            attempt.finish()
            failure = (
                send_error(
                    exc, what, attempt.reason, attempt.budget, self._secret, status=attempt.status
                ),
                safe_cause(exc, self._secret),
            )
        except BaseException:
            attempt.finish()
            raise
        finally:
            _SENDING.attempt = None
        if failure is not None:
            # Raised here, not in the except clause, so that a cause that quotes the key is
            # not kept as the context either.
            raise failure[0] from failure[1]
        exchange = Exchange(response, attempt, what, self._secret)
        sent_id = prepared.headers.get(CLIENT_REQUEST_ID)  # (both case-insensitive)
        echoed = exchange.headers.get(CLIENT_REQUEST_ID)
        # requests joins a header sent twice with ", ": each copy must be ours.
        if (
            isinstance(sent_id, str)
            and echoed
            and any(part.strip() != sent_id for part in echoed.split(","))
        ):
            # The answer names another request: whatever put it on this connection (a proxy
            # or server that mixed answers up), nothing on the connection can be trusted.
            exchange.close()
            raise crossed_answer(what, sent_id, echoed, exchange.snapshot(""), response.status_code)
        return exchange

    def close(self) -> None:
        # urllib3 2 only forgets its pools on clear(), leaving their sockets to the garbage
        # collector, which may take a while when a traceback holds a cycle: close them here,
        # so a closed client holds no connection open.
        for adapter in {id(a): a for a in self._session.adapters.values()}.values():
            if isinstance(adapter, HTTPAdapter):
                for manager in [adapter.poolmanager, *adapter.proxy_manager.values()]:
                    for key in list(manager.pools.keys()):
                        pool = manager.pools.get(key)
                        if pool is not None:
                            pool.close()
        self._session.close()
        self.watchdog.close()


class Exchange:
    """An answer whose head has arrived: its status and headers, and its body, read within
    the attempt's deadline and a size cap. Closed once, by whoever finishes with it.

    The one door through which what a server sent reaches our objects: ``headers`` and
    ``reason`` are scrubbed of the API key here, as the answer arrives, and bodies pass
    :meth:`scrub` (text) or :meth:`clean_json` (decoded JSON) before anyone keeps them. A
    server that echoes the key (in a request id, a rate header, an error field, a chunk) thus
    echoes it into nothing we log, raise, record or write. The request is dropped from the
    response: sent, it is of no use, and it holds the ``Authorization`` header.
    """

    def __init__(
        self, response: requests.Response, attempt: Attempt, what: str, secret: str | None
    ) -> None:
        response.request = None  # type: ignore[assignment]
        self.response = response
        self.attempt = attempt
        self.what = what
        self._secret = secret
        self.status_code: int = response.status_code
        self.headers: Mapping[str, str] = scrub_headers(response.headers, secret)
        self.reason: str = scrub(str(response.reason or ""), secret)
        self._closed = False
        self._eof = False

    def scrub(self, text: str) -> str:
        """``text`` (from this answer's body) with the key scrubbed out."""
        return scrub(text, self._secret)

    def quote(self, raw: bytes | bytearray) -> str:
        """What may be kept of a body as text: at most ``ERROR_BODY_LIMIT`` characters,
        invalid UTF-8 as U+FFFD, scrubbed *before* it is cut, so that a key straddling the cut
        is not kept by half. (``raw`` should hold ``QUOTE_MARGIN`` bytes past the limit.)"""
        text = bytes(raw[: ERROR_BODY_LIMIT + QUOTE_MARGIN]).decode("utf-8", "replace")
        return scrub(text, self._secret)[:ERROR_BODY_LIMIT]

    def read_error_body(self) -> bytearray:
        """As much of an error body as :meth:`quote` needs (the rest is left unread: the
        connection is then closed, not reused)."""
        return self.read_body(ERROR_BODY_LIMIT + QUOTE_MARGIN, truncate=True)

    def clean_json(self, data: Any, raw: bytes | bytearray | str) -> Any:
        """``data``, decoded from ``raw``, with the key scrubbed out of every string in it
        (the document itself when ``raw`` cannot hold the key)."""
        return scrub_json(data, self._secret) if json_may_hold(raw, self._secret) else data

    def read_body(self, limit: int, *, truncate: bool = False) -> bytearray:
        """The whole decoded body. Past ``limit`` bytes it raises, naming the cap; with
        ``truncate`` (error bodies, of which a snippet is enough) it stops there instead."""
        out = bytearray()
        for piece in self.iter_decoded(limit=limit + 1):
            out += piece
            if len(out) > limit:
                if truncate:
                    del out[limit:]
                    break
                raise self.too_large(limit)
        return out  # not copied to bytes: a 50 MB answer would briefly take 100

    def iter_decoded(self, *, limit: int | None = None) -> Iterator[bytes]:
        """The decoded body as it arrives; a decompressor never yields more than
        ``READ_SIZE`` at a time (nor more than ``limit`` in all)."""
        decoder = _decoder(self.headers.get("content-encoding", ""), self)
        if decoder.identity and limit is None:
            # Nothing to undo and no cap to keep (a stream's events are capped one by one):
            # the pieces as they come, uncopied.
            yield from self._iter_raw()
            return
        produced = 0
        for raw in self._iter_raw():
            data = raw
            while data:
                allowed = READ_SIZE if limit is None else max(min(READ_SIZE, limit - produced), 1)
                piece, data = decoder.step(data, allowed)
                if piece:
                    produced += len(piece)
                    yield piece
                if limit is not None and produced >= limit:
                    return
        tail = decoder.flush()
        if tail:
            yield tail

    def read_rest(self) -> None:
        """Read what is left of a body whose content is complete (a stream past its end
        mark), so ``close()`` can give the connection back to the pool. At most
        ``REST_BYTES`` within ``REST_SECONDS``: past either, the connection is closed."""
        self.attempt.rearm(REST_SECONDS)
        left = REST_BYTES
        try:
            for data in self._iter_raw():
                left -= len(data)
                if left < 0:
                    return
        except CometError:
            return  # cut or broken: close() closes it

    def snapshot(self, text: str) -> ResponseSnapshot:
        """What an exception or a raw response keeps of this answer (``text``: its body, or
        as much of it as was read), scrubbed."""
        return ResponseSnapshot.of(
            status_code=self.status_code,
            reason=self.reason,
            headers=self.headers,
            url=str(self.response.url or ""),
            text=text,
            secret=self._secret,
        )

    def too_large(self, limit: int) -> APIResponseValidationError:
        return body_too_large(self.what, limit, self.snapshot(""), self.status_code)

    def _iter_raw(self) -> Iterator[bytes]:
        raw = self.response.raw
        read1 = getattr(raw, "read1", None)
        try:
            if raw.chunked and raw.supports_chunked_reads():
                # Chunk by chunk as the server sent them (a streamed answer sends one event a
                # chunk), each in pieces of at most READ_SIZE.
                yield from raw.read_chunked(READ_SIZE, decode_content=False)
            elif read1 is not None:
                # Whatever the socket has, as soon as it has it: a stream without a length
                # or chunking arrives piece by piece, not all at once when the server closes.
                while True:
                    data = read1(READ_SIZE, decode_content=False)
                    if not data:
                        break
                    yield data
            else:  # urllib3 1.26
                yield from raw.stream(READ_SIZE, decode_content=False)
            if self.attempt.reason is not None:
                # Cut by the watchdog or a stop: the socket's EOF is ours, not the server's.
                raise read_error(
                    EOFError("cut"), self.what, self.attempt.reason, self.attempt.budget, None
                )
            self._eof = True
            return
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            failure = read_error(
                exc, self.what, self.attempt.reason, self.attempt.budget, self._secret
            )
            cause = safe_cause(exc, self._secret)
        # Raised outside the except clause: a cause that quotes the key is not kept as the
        # context either.
        raise failure from cause

    def close(self) -> None:
        """Give the connection back (a fully read body) or close it (anything else)."""
        if self._closed:
            return
        self._closed = True
        self.attempt.finish()
        if self._eof:
            # Read to its end: the connection goes back to the pool for the next call.
            self.response.raw.release_conn()
        else:
            # Bytes are left on it (a body cut short, a stream closed early): never reused.
            self.response.close()


class _Decoder:
    """Undoes a Content-Encoding in bounded steps."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self.identity = obj is None

    def step(self, data: bytes, limit: int) -> tuple[bytes, bytes]:
        """Decode at most ``limit`` bytes out of ``data``; the rest of ``data`` not yet used."""
        if self._obj is None:
            return data[:limit], data[limit:]
        out = self._obj.decompress(data, limit)
        return out, self._obj.unconsumed_tail

    def flush(self) -> bytes:
        return b"" if self._obj is None else self._obj.flush(READ_SIZE)


class _Deflate:
    """``deflate`` is zlib-wrapped by the standard and raw by some servers; try both."""

    def __init__(self) -> None:
        self._obj: Any = zlib.decompressobj()
        self._first = True
        self.unconsumed_tail = b""

    def decompress(self, data: bytes, limit: int) -> bytes:
        if self._first:
            self._first = False
            try:
                out = self._obj.decompress(data, limit)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._obj.decompress(data, limit)
        else:
            out = self._obj.decompress(data, limit)
        self.unconsumed_tail = self._obj.unconsumed_tail
        return out  # type: ignore[no-any-return]

    def flush(self, size: int) -> bytes:
        return self._obj.flush(size)  # type: ignore[no-any-return]


def _decoder(encoding: str, exchange: Exchange) -> _Decoder:
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return _Decoder(None)
    if name in ("gzip", "x-gzip"):
        return _Decoder(_Checked(zlib.decompressobj(16 + zlib.MAX_WBITS), exchange))
    if name == "deflate":
        return _Decoder(_Checked(_Deflate(), exchange))
    raise unasked_encoding(
        exchange.what, name, ACCEPT_ENCODING, exchange.snapshot(""), exchange.status_code
    )


class _Checked:
    """A decompressor whose corrupt input is our exception, not ``zlib.error``."""

    def __init__(self, obj: Any, exchange: Exchange) -> None:
        self._obj = obj
        self._exchange = exchange

    @property
    def unconsumed_tail(self) -> bytes:
        return self._obj.unconsumed_tail  # type: ignore[no-any-return]

    def decompress(self, data: bytes, limit: int) -> bytes:
        try:
            return self._obj.decompress(data, limit)  # type: ignore[no-any-return]
        except zlib.error as exc:
            ex = self._exchange
            raise corrupt_body(ex.what, exc, ex.snapshot(""), ex.status_code) from None

    def flush(self, size: int) -> bytes:
        return self._obj.flush(size)  # type: ignore[no-any-return]
