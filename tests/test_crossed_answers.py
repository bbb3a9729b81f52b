"""Answers that could cross between calls, written on raw sockets: informational answers
(1xx) before the real one, and a server that answers with another request's id.

``http.client`` skips only ``100 Continue``: a ``102 Processing`` or ``103 Early Hints`` (sent
by CDNs and gateways in front of an API) used to be taken as the answer, with the real one left
on the pooled connection for the *next* call to read as its own. Every test here gives each
call a marker and asserts that the answer it gets carries its own marker.
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from comet_sync import APIError, APIResponseValidationError, CometClient

from .hostile import Request, head, hostile

SECRET = "sk-test-5f1e2d3c4b5a69788796a5b4c3d2e1f0"

INFORMATIONAL = {
    "100": [b"HTTP/1.1 100 Continue\r\n\r\n"],
    "102": [b"HTTP/1.1 102 Processing\r\n\r\n"],
    "103": [b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"],
    "102+103x2": [
        b"HTTP/1.1 102 Processing\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </b.css>; rel=preload\r\n\r\n",
    ],
}


def _marker(request: Request) -> str:
    body = json.loads(request.body)
    return str(body["messages"][0]["content"])


def _sent_id(request: Request) -> str:
    """The X-Client-Request-Id the client sent with ``request`` ("" if none)."""
    for line in request.head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "x-client-request-id":
            return value.strip()
    return ""


def _completion(marker: str) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-{marker}",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": marker},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()


def _events(marker: str) -> bytes:
    chunk = {
        "id": f"chatcmpl-{marker}",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": marker}, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


def _early(kinds: list[bytes], *, stream: bool, pause: float = 0.02):  # type: ignore[no-untyped-def]
    """Each request: the informational answers, a pause (so the client has read them before the
    real answer exists: what made the next call read it), then the answer, kept alive."""

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        marker = _marker(request)
        for part in kinds:
            conn.sendall(part)
        stop.wait(pause)
        if stream:
            body = _events(marker)
            conn.sendall(head("200 OK", "Content-Type: text/event-stream", length=len(body)) + body)
        else:
            body = _completion(marker)
            conn.sendall(head("200 OK", "Content-Type: application/json", length=len(body)) + body)
        return True

    return handle


def _ask(client: CometClient, marker: str, *, stream: bool) -> str:
    messages = [{"role": "user", "content": marker}]
    if stream:
        with client.chat.completions.create(model="m", messages=messages, stream=True) as s:
            return "".join(s.text_deltas())
    reply = client.chat.completions.create(model="m", messages=messages)
    return str(reply.choices[0].message.content)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", sorted(INFORMATIONAL))
def test_informational_answers_are_skipped_one_call_after_another(kind: str, stream: bool) -> None:
    with hostile(_early(INFORMATIONAL[kind], stream=stream)) as server:
        client = CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0)
        try:
            got = [_ask(client, f"call-{i}", stream=stream) for i in range(6)]
        finally:
            client.close()
        assert got == [f"call-{i}" for i in range(6)]
        assert server.count == 6


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_sixteen_threads_each_get_their_own_answer(stream: bool) -> None:
    kinds = INFORMATIONAL["102+103x2"]
    with hostile(_early(kinds, stream=stream, pause=0.005)) as server:
        client = CometClient(
            api_key=SECRET, base_url=server.base_url, max_retries=0, max_concurrency=16
        )
        markers = [f"t{i // 25}-c{i % 25}" for i in range(16 * 25)]
        try:
            with ThreadPoolExecutor(16) as pool:
                got = list(pool.map(lambda m: _ask(client, m, stream=stream), markers))
        finally:
            client.close()
        crossed = sum(1 for want, have in zip(markers, got) if want != have)
        assert crossed == 0, f"{crossed} of {len(markers)} calls got another call's answer"
        assert server.count == len(markers)


def test_a_switching_protocols_answer_is_an_error_and_its_connection_is_not_reused() -> None:
    """101 is no informational answer we can skip (we never ask to switch): the call fails,
    and the next call does not read what followed it on that connection."""
    calls = {"n": 0}

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        calls["n"] += 1
        marker = _marker(request)
        if calls["n"] == 1:
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")
            stop.wait(0.02)
            body = _completion("stale")
        else:
            body = _completion(marker)
        conn.sendall(head("200 OK", "Content-Type: application/json", length=len(body)) + body)
        return True

    with hostile(handle) as server:
        client = CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0)
        try:
            with pytest.raises(APIError) as caught:
                _ask(client, "first", stream=False)
            assert "101" in str(caught.value)
            assert _ask(client, "second", stream=False) == "second"
        finally:
            client.close()


def test_endless_informational_answers_end_in_an_error_not_a_hang() -> None:
    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        try:
            for _ in range(10_000):
                if stop.is_set():
                    break
                conn.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
        except OSError:
            pass
        return False

    with hostile(handle) as server:
        client = CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0)
        try:
            with pytest.raises(APIError) as caught:
                _ask(client, "x", stream=False)
        finally:
            client.close()
        assert not isinstance(caught.value, APIResponseValidationError) or "102" in str(
            caught.value
        )


def test_an_answer_naming_another_request_is_refused_not_returned() -> None:
    """A server (or a proxy that lost its place) that answers each request with the one before
    it, echoing that request's X-Client-Request-Id: no call returns another call's answer."""
    previous: dict[int, tuple[str, str]] = {}

    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        sent = _sent_id(request)
        marker = _marker(request)
        echo, answer_marker = previous.get(conn.fileno(), ("none-yet", "none-yet"))
        previous[conn.fileno()] = (sent, marker)
        body = _completion(answer_marker)
        conn.sendall(
            head(
                "200 OK",
                "Content-Type: application/json",
                f"X-Client-Request-Id: {echo}",
                length=len(body),
            )
            + body
        )
        return True

    with hostile(handle) as server:
        client = CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0)
        try:
            for i in range(4):
                with pytest.raises(APIResponseValidationError) as caught:
                    _ask(client, f"call-{i}", stream=False)
                assert "another request" in str(caught.value)
        finally:
            client.close()
        assert server.count == 4


def test_a_switching_protocols_answer_with_a_chunked_body_is_not_read_as_the_answer() -> None:
    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        body = _completion("after-101")
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        return False

    with hostile(handle) as server:
        client = CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0)
        try:
            with pytest.raises(APIResponseValidationError) as caught:
                _ask(client, "x", stream=False)
            assert "101" in str(caught.value)
        finally:
            client.close()


@pytest.mark.parametrize("copies", [1, 2])
def test_an_answer_echoing_our_own_id_is_ours_however_often_it_is_echoed(copies: int) -> None:
    def handle(conn: socket.socket, request: Request, stop: threading.Event) -> bool:
        sent = _sent_id(request)
        body = _completion(_marker(request))
        echoes = [f"X-Client-Request-Id: {sent}"] * copies + [f"x-ms-client-request-id: {sent}x"]
        conn.sendall(
            head("200 OK", "Content-Type: application/json", *echoes, length=len(body)) + body
        )
        return True

    with hostile(handle) as server:
        client = CometClient(api_key=SECRET, base_url=server.base_url, max_retries=0)
        try:
            assert _ask(client, "mine", stream=False) == "mine"
        finally:
            client.close()
