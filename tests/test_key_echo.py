"""A server that echoes the API key back in every place a server can put it, written on raw
sockets, and every channel through which the client could pass it on.

The key may never reach: ``str``/``repr`` of anything the client returns or raises, a pickled
exception, an exception's attributes (``body``, ``code``, ``type``, ``param``, ``request_id``,
its snapshot's headers, reason and text), a chained transport exception, ``on_request`` records,
the metrics, the log at DEBUG, a pickled or deep-copied answer, the call object handed to each
attempt, and the CLI's stdout, stderr, output and state files.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from comet_sync import (
    APIConnectionError,
    APIError,
    APIStatusError,
    CometClient,
    RequestRecord,
    RequestSnapshot,
)

from .hostile import Request, hostile

SECRET = "sk-echo-0a1b2c3d4e5f60718293a4b5c6d7e8f9-long-enough-to-outlast-any-cut"
# What must not appear, whole or in part: the key, its percent- and JSON-escaped forms, and a
# middle slice (a log line that cuts the key short still shows that).
FORMS = [
    SECRET,
    urllib.parse.quote(SECRET, safe=""),
    SECRET[10:40],
]


def _unicode_escaped(text: str) -> str:
    """The key as JSON with every character \\u-escaped: only a JSON decoder sees the key."""
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


ECHO_HEADERS = [
    f"X-Request-Id: {SECRET}",
    f"X-Oneapi-Request-Id: {SECRET}",
    f"Request-Id: {SECRET}",
    f"X-Echo: Bearer {SECRET}",
    f"X-Echo-Quoted: {urllib.parse.quote(SECRET, safe='')}",
    f"X-Ratelimit-Limit-Requests: {SECRET}",
    f"X-Ratelimit-Remaining-Requests: {SECRET}",
    f"X-Ratelimit-Reset-Requests: {SECRET}",
    f"X-Ratelimit-Limit-Tokens: {SECRET}",
    f"Anthropic-Ratelimit-Requests-Limit: {SECRET}",
    f"Anthropic-Ratelimit-Requests-Reset: {SECRET}",
    f'RateLimit-Policy: "{SECRET}";q={SECRET};w=1',
    f"RateLimit: {SECRET}",
    f"Retry-After: {SECRET}",
    f"Retry-After-Ms: {SECRET}",
    f"Location: http://example.invalid/{SECRET}",
    f"Set-Cookie: session={SECRET}",
]


# Where a document says ESCAPED, the wire carries the key \u-escaped.
ESCAPED = "@escaped-key@"


def _dumps(document: object) -> str:
    return json.dumps(document).replace(ESCAPED, _unicode_escaped(SECRET))


def _error_body() -> bytes:
    error = {
        "message": f"invalid token {SECRET}",
        "type": SECRET,
        "param": ESCAPED,
        "code": SECRET,
        SECRET: ESCAPED,
    }
    return _dumps({"error": error, "request_id": SECRET}).encode()


def _completion_body() -> bytes:
    message = {"role": "assistant", "content": SECRET, "refusal": urllib.parse.quote(SECRET)}
    return _dumps(
        {
            "id": SECRET,
            "object": "chat.completion",
            "model": ESCAPED,
            "system_fingerprint": SECRET,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            SECRET: {ESCAPED: [SECRET]},
        }
    ).encode()


def _stream_body(error: bool) -> bytes:
    delta = {"role": "assistant", "content": SECRET}
    chunk = _dumps(
        {
            "id": SECRET,
            "object": "chat.completion.chunk",
            "model": ESCAPED,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )
    events = f"id: {SECRET}\nevent: {SECRET}\ndata: {chunk}\n\n"
    if error:
        failure = {"message": SECRET, "code": SECRET, "type": ESCAPED, "param": SECRET}
        events += f"data: {_dumps({'error': failure})}\n\n"
    else:
        events += "data: [DONE]\n\n"
    return events.encode()


def _send(conn: socket.socket, status: str, ctype: str, body: bytes) -> None:
    head = [f"HTTP/1.1 {status} {SECRET}", f"Content-Type: {ctype}", *ECHO_HEADERS]
    head.append(f"Content-Length: {len(body)}")
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)


def _echo(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
    """What it answers depends on the user message: 'ok', 'stream', 'stream-error', else an
    error status (the message is the status code)."""
    try:
        payload = json.loads(request.body)
        text = str(payload["messages"][0]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        text = "401"
    if text == "ok":
        _send(conn, "200", "application/json", _completion_body())
    elif text.startswith("stream"):
        _send(conn, "200", "text/event-stream", _stream_body(text == "stream-error"))
    else:
        _send(conn, text, "application/json", _error_body())
    return True


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _everything(obj: Any, seen: set[int] | None = None, depth: int = 0) -> Iterator[str]:
    """Every string reachable from obj: its str and repr, and those of its public attributes,
    items and chained exceptions, recursively (bounded). A live stream's private parts (its
    socket, the buffers under it) hold the bytes the server sent: they are no output."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 8:
        return
    seen.add(id(obj))
    try:
        yield str(obj)
        yield repr(obj)
    except Exception as exc:  # a repr that fails is no leak
        yield f"<{type(exc).__name__}>"
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _everything(key, seen, depth + 1)
            yield from _everything(value, seen, depth + 1)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            yield from _everything(item, seen, depth + 1)
        return
    if isinstance(obj, BaseException):
        for link in (obj.__cause__, obj.__context__):
            if link is not None:
                yield from _everything(link, seen, depth + 1)
    attrs: dict[str, Any] = {}
    if hasattr(obj, "__dict__"):
        attrs.update(vars(obj))
    for name in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, name):
            attrs[name] = getattr(obj, name)
    for name in ("headers", "reason", "text", "body", "code", "type", "param", "request_id"):
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        if not callable(value):
            attrs[name] = value
    for name, value in attrs.items():
        if name.startswith("_") or (callable(value) and not isinstance(value, type)):
            continue
        yield from _everything(value, seen, depth + 1)


def _leaks(texts: Iterator[str] | list[str]) -> list[str]:
    found = []
    for text in texts:
        for form in FORMS:
            if form in text:
                found.append(text[:200])
                break
    return found


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="comet_sync")
    return caplog


def _log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = []
    for record in caplog.records:
        out.append(record.getMessage())
        if record.exc_info:
            out.append("".join(traceback.format_exception(*record.exc_info)))
    return out


def _client(base_url: str, records: list[RequestRecord], **kwargs: Any) -> CometClient:
    kwargs.setdefault("max_retries", 1)
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("max_wait", 0.05)
    return CometClient(api_key=SECRET, base_url=base_url, on_request=records.append, **kwargs)


@pytest.mark.parametrize("status", ["401", "400", "429", "500", "503"])
def test_an_error_answer_that_echoes_the_key_keeps_it_nowhere(
    status: str, debug_log: pytest.LogCaptureFixture
) -> None:
    records: list[RequestRecord] = []
    with hostile(_echo) as server:
        client = _client(server.base_url, records)
        try:
            with pytest.raises(APIStatusError) as caught:
                client.chat.completions.create(model="m", messages=_messages(status))
            exc = caught.value
            texts = list(_everything(exc))
            texts.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            texts.append(pickle.dumps(exc).decode("latin-1"))
            copy = pickle.loads(pickle.dumps(exc))
            texts.extend(_everything(copy))
            texts.extend(_everything(records))
            texts.extend(_everything(client.metrics.snapshot()))
            texts.extend(_log_texts(debug_log))
        finally:
            client.close()
    assert exc.status_code == int(status)
    # The echoed fields are still there, scrubbed: the error stays readable.
    assert exc.request_id is not None and "***" in exc.request_id
    assert exc.code is not None and "***" in exc.code
    assert exc.type is not None and "***" in exc.type
    assert exc.param is not None and "***" in exc.param
    assert _leaks(texts) == []


def test_a_success_that_echoes_the_key_keeps_it_nowhere(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    records: list[RequestRecord] = []
    with hostile(_echo) as server:
        client = _client(server.base_url, records)
        try:
            reply = client.chat.completions.create(model="m", messages=_messages("ok"))
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=_messages("ok")
            )
            texts = list(_everything(reply))
            texts.append(json.dumps(reply.to_dict()))
            texts.append(reply.model_dump_json())
            texts.extend(_everything(raw))
            texts.extend(_everything(dict(raw.headers)))
            texts.extend(_everything(raw.parse()))
            # What a cache or a result backend keeps: the pickles, and what comes back of them.
            for kept in (reply, reply.choices[0].message, raw):
                texts.append(pickle.dumps(kept).decode("latin-1"))
                texts.extend(_everything(pickle.loads(pickle.dumps(kept))))
                texts.extend(_everything(copy.deepcopy(kept)))
            texts.extend(_everything(records))
            texts.extend(_everything(client.metrics.snapshot()))
            texts.extend(_log_texts(debug_log))
        finally:
            client.close()
    assert reply.choices[0].message.content == "***"
    assert _leaks(texts) == []


@pytest.mark.parametrize("kind", ["stream", "stream-error"])
def test_a_stream_that_echoes_the_key_keeps_it_nowhere(
    kind: str, debug_log: pytest.LogCaptureFixture
) -> None:
    records: list[RequestRecord] = []
    texts: list[str] = []
    with hostile(_echo) as server:
        client = _client(server.base_url, records)
        try:
            stream = client.chat.completions.create(
                model="m", messages=_messages(kind), stream=True
            )
            texts.extend(_everything(stream.response))
            try:
                for chunk in stream:
                    texts.extend(_everything(chunk))
                    texts.append(json.dumps(chunk.to_dict()))
                    texts.append(pickle.dumps(chunk).decode("latin-1"))
            except APIError as exc:
                texts.extend(_everything(exc))
                texts.append(pickle.dumps(exc).decode("latin-1"))
                assert kind == "stream-error"
            else:
                assert kind == "stream"
                final = stream.get_final_completion()
                texts.extend(_everything(final))
                texts.append(pickle.dumps(final).decode("latin-1"))
            texts.extend(_everything(stream))
            stream.close()
            texts.extend(_everything(records))
            texts.extend(_everything(client.metrics.snapshot()))
            texts.extend(_log_texts(debug_log))
        finally:
            client.close()
    assert _leaks(texts) == []


def test_a_refused_connection_keeps_no_request() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = CometClient(api_key=SECRET, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    try:
        with pytest.raises(APIConnectionError) as caught:
            client.chat.completions.create(model="m", messages=_messages("x"))
    finally:
        client.close()
    exc = caught.value
    link: BaseException | None = exc
    # Ours names its request by method and URL only (openai-python's e.request); no link
    # keeps a request that could hold the Authorization header.
    assert exc.request == RequestSnapshot("POST", f"http://127.0.0.1:{port}/v1/chat/completions")
    link = exc.__cause__ or exc.__context__
    while link is not None:
        assert getattr(link, "request", None) is None, type(link)
        link = link.__cause__ or link.__context__
    texts = list(_everything(exc))
    assert _leaks(texts) == []
    assert not [t for t in texts if "Authorization" in t]


@pytest.mark.slow
def test_the_cli_batch_against_an_echoing_server_writes_the_key_nowhere(tmp_path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {"custom_id": name, "model": "m", "messages": _messages(name)}
        for name in ("ok", "401", "400", "429", "500", "stream")
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with hostile(_echo) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMET")}
        env.update(COMETAPI_KEY=SECRET, COMETAPI_BASE_URL=server.base_url)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "comet_sync",
                "-v",
                "batch",
                str(source),
                "-o",
                str(output),
                "--max-retries",
                "1",
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode in (0, 1), result.stderr
    written = output.read_text()
    assert len(written.splitlines()) == len(lines)
    # Every file beside the output, the binary input ledger too (latin-1 maps every byte).
    state = "".join(
        p.read_bytes().decode("latin-1") for p in tmp_path.iterdir() if p not in (source, output)
    )
    assert _leaks([result.stdout, result.stderr, written, state]) == []
    assert "***" in written


def test_the_search_finds_a_key_planted_where_it_looks() -> None:
    """The searches above can fail: a key in a public attribute, a dict value, a chained
    exception or an escaped form is found."""

    class Holder:
        def __init__(self) -> None:
            self.value = {"nested": [urllib.parse.quote(SECRET, safe="")]}

    cause = ValueError(SECRET[5:45])
    exc = RuntimeError("outer")
    exc.__cause__ = cause
    assert _leaks(list(_everything(Holder())))
    assert _leaks(list(_everything(exc)))


# -- bytes the HTTP parser cannot read, bodies cut or oddly encoded ---------------------------

_KEY = SECRET.encode()
_PLAIN_COMPLETION = _dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
    }
).encode()
WIRE = {
    "bad status code": b"HTTP/1.1 2x0 " + _KEY + b"\r\nContent-Length: 0\r\n\r\n",
    "garbage status line": _KEY + b" 200 OK\r\n\r\n",
    "garbage after a 103": b"HTTP/1.1 103 Early Hints\r\n\r\nXYZ " + _KEY + b"\r\n\r\n",
    "chunk length": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + _KEY + b"\r\n"
    ),
    "header line without a colon": (
        b"HTTP/1.1 200 OK\r\n" + _KEY + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(_PLAIN_COMPLETION) + _PLAIN_COMPLETION
    ),
    "continuation line first": (
        b"HTTP/1.1 200 OK\r\n  " + _KEY + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(_PLAIN_COMPLETION) + _PLAIN_COMPLETION
    ),
}


@pytest.mark.parametrize("where", sorted(WIRE))
def test_the_key_in_bytes_http_cannot_parse_is_kept_nowhere(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A status line, chunk length or header line holding the key: http.client and urllib3
    quote such bytes in their exceptions and warnings (the chained cause, urllib3's "Failed
    to parse headers" at WARNING)."""
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        conn.sendall(WIRE[where])
        return False

    records: list[RequestRecord] = []
    texts: list[str] = []
    with hostile(handle) as server:
        client = _client(server.base_url, records, max_retries=0)
        try:
            client.chat.completions.create(model="m", messages=_messages("x"))
        except APIError as exc:
            texts.extend(_everything(exc))
            texts.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            texts.append(pickle.dumps(exc).decode("latin-1"))
        finally:
            client.close()
    texts.extend(_everything(records))
    texts.extend(_log_texts(caplog))
    assert _leaks(texts) == []


def _one_failed_call(handle: Any) -> Any:
    """The APIError one call raises against a raw-socket server answering with ``handle``."""
    with hostile(handle) as server:
        client = _client(server.base_url, [], max_retries=0)
        try:
            with pytest.raises(APIError) as caught:
                client.chat.completions.create(model="m", messages=_messages("x"))
        finally:
            client.close()
    return caught.value


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("status", ["500", "200"])
def test_a_key_straddling_the_end_of_what_is_kept_of_a_body_is_not_kept_by_half(
    status: str, gzipped: bool
) -> None:
    import gzip

    from comet_sync._exceptions import ERROR_BODY_LIMIT

    # The key starts 20 characters before the 64 KiB a snapshot keeps.
    text = "x" * (ERROR_BODY_LIMIT - 20) + SECRET + "y" * 100
    body = text.encode()
    extra = ["Content-Encoding: gzip"] if gzipped else []
    if gzipped:
        body = gzip.compress(body)

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        head = [f"HTTP/1.1 {status} X", "Content-Type: text/plain", *extra]
        head.append(f"Content-Length: {len(body)}")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return True

    exc = _one_failed_call(handle)
    texts = list(_everything(exc))
    texts.append(pickle.dumps(exc).decode("latin-1"))
    assert _leaks(texts) == []
    assert SECRET[:15] not in exc.response.text  # not even its start


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_json_answer_not_in_utf8_is_refused_without_quoting_the_key(encoding: str) -> None:
    body = _dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": SECRET},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode(encoding)

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        return True

    assert _leaks(list(_everything(_one_failed_call(handle)))) == []


def test_the_call_object_and_its_request_never_show_or_pickle_the_key() -> None:
    """What one call hands to each attempt (``_call.call.Call``) holds the request, whose
    ``Authorization`` header is the key: its repr and str name the call, never the header,
    and neither it nor the request can be pickled or copied (a pickle would hold the key)."""
    from comet_sync import Clock, RateControl
    from comet_sync._call.call import Call
    from comet_sync._call.request import build_request
    from comet_sync._call.retry import RetryingCall
    from comet_sync._cancel import Scope
    from comet_sync._config import CallOptions, RetryConfig, Timeout
    from comet_sync._rate.limiter import Limiter
    from comet_sync._records import CallLog

    options = CallOptions(Timeout(), RetryConfig())
    req = build_request(
        "POST",
        "http://127.0.0.1:9/v1",
        "/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        options,
        auth_header=f"Bearer {SECRET}",
        secret=SECRET,
        accept="application/json",
        limiter=Limiter(1, RateControl()),
    )
    assert req.headers["Authorization"] == f"Bearer {SECRET}"  # the key is in there
    retry = RetryingCall(options.retry, Clock(), 0.0, subject=req)
    call = Call(req, options, retry, CallLog(req.route, req.model, 0.0), Scope())
    for shown in (repr(call), str(call), repr(req), str(req)):
        assert SECRET not in shown and "/chat/completions" in shown
    for held in (call, req):
        for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError) as caught:
                attempt(held)
            assert SECRET not in str(caught.value)
