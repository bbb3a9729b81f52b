"""The fake server's own knobs, checked with a bare requests session (no client code), in
this process and as a process of its own."""

from __future__ import annotations

import argparse
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from comet_sync.testing import FakeCometServer
from comet_sync.testing._process import add_server_arguments, server_from_arguments

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def post(server: FakeCometServer, session: requests.Session, body=BODY) -> requests.Response:
    return session.post(
        server.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": "Bearer k"},
        timeout=5,
    )


def test_chat_shape_and_request_id() -> None:
    with FakeCometServer() as server, requests.Session() as s:
        r = post(server, s)
        assert r.status_code == 200
        data = r.json()
        assert data["object"] == "chat.completion"
        assert data["choices"][0]["message"]["content"] == "echo: hi"
        assert data["usage"]["total_tokens"] == 3
        assert r.headers["X-Oneapi-Request-Id"].startswith("fake-")


def test_models_list_and_unknown_route() -> None:
    with FakeCometServer(models=["a", "b"]) as server, requests.Session() as s:
        r = s.get(server.base_url + "/models", timeout=5)
        assert [m["id"] for m in r.json()["data"]] == ["a", "b"]
        r = s.post(server.base_url + "/nope", json={}, timeout=5)
        assert r.status_code == 404
        assert "(request id: fake-" in r.json()["error"]["message"]


def test_missing_messages_is_a_500_invalid_request_like_cometapi() -> None:
    with FakeCometServer() as server, requests.Session() as s:
        r = post(server, s, {"model": "m"})
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "invalid_request"


def test_auth() -> None:
    with FakeCometServer(api_key="right") as server, requests.Session() as s:
        assert post(server, s).status_code == 401


def test_rate_limit_with_retry_after() -> None:
    with FakeCometServer(rps=1, burst=2, retry_after=2) as server, requests.Session() as s:
        statuses = [post(server, s).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
        r = post(server, s)
        assert r.headers["Retry-After"] == "2"
        server.configure(rps=None)
        assert post(server, s).status_code == 200


def test_concurrency_limit_and_counters() -> None:
    with FakeCometServer(max_in_flight=2, latency=0.2) as server:
        statuses: list[int] = []
        lock = threading.Lock()

        def one() -> None:
            with requests.Session() as s:
                code = post(server, s).status_code
            with lock:
                statuses.append(code)

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [200, 200, 429, 429, 429]
        stats = server.stats()
        assert stats.connections_opened == 5
        assert stats.statuses == {200: 2, 429: 3}
        assert stats.attempts == {"hi": 5}


def test_scripted_faults_in_order() -> None:
    with FakeCometServer() as server, requests.Session() as s:
        server.fail(503, code="model_not_found", message="no such model")
        server.respond_next("<html>hi</html>")
        server.reset_next()
        r = post(server, s)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_found"
        r = post(server, s)
        assert r.status_code == 200 and r.text == "<html>hi</html>"
        try:
            post(server, s)
        except requests.ConnectionError:
            pass
        else:
            raise AssertionError("the connection should have been reset")
        assert post(server, s).status_code == 200
        assert [r.status for r in server.received] == [503, 200, None, 200]


def test_keep_alive() -> None:
    # Whether the server adds Nagle delays is shown by benchmarks/overhead.py, which prints the
    # bare per-call time (about 1 ms, not 40); tests do not time things.
    with FakeCometServer() as server, requests.Session() as s:
        for _ in range(20):
            assert post(server, s).status_code == 200
        assert server.stats().connections_opened == 1
        assert len({r.connection for r in server.received}) == 1


def test_one_model_by_id_and_an_unknown_one() -> None:
    with FakeCometServer(models=["a", "org/b"]) as server, requests.Session() as s:
        listed = s.get(server.base_url + "/models", timeout=5).json()["data"]
        one = s.get(server.base_url + "/models/a", timeout=5)
        assert one.status_code == 200 and one.json() == listed[0]
        assert s.get(server.base_url + "/models/org/b", timeout=5).json()["id"] == "org/b"
        missing = s.get(server.base_url + "/models/nope", timeout=5)
        assert missing.status_code == 404 and missing.headers["X-Oneapi-Request-Id"]
        assert missing.json() == {
            "error": {
                "message": "The model `nope` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        }
        assert s.post(server.base_url + "/models/a", timeout=5).status_code == 404


# -- as a process of its own -------------------------------------------------------------------

EXPECTED_KEY = "sk-fake-server-expects-this-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "FAKE_EXPECTED_KEY": EXPECTED_KEY}
    env.pop("COMETAPI_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "stop"),
    [
        (["-m", "comet_sync.testing"], signal.SIGTERM),
        (["-m", "comet_sync", "fake-server"], signal.SIGINT),  # the comet-sync command; Ctrl-C
    ],
)
def test_the_fake_server_runs_as_a_process_with_its_knobs(command: list[str], stop: int) -> None:
    port = _free_port()
    argv = [
        *command,
        "--port",
        str(port),
        "--models",
        "m1,m2",
        "--latency",
        "0.2",
        "--api-key-env",
        "FAKE_EXPECTED_KEY",
    ]
    proc, url = _start(argv)
    try:
        assert url == f"http://127.0.0.1:{port}/v1"
        with requests.Session() as s:
            auth = {"Authorization": f"Bearer {EXPECTED_KEY}"}
            started = time.monotonic()
            listed = s.get(url + "/models", headers=auth, timeout=5)
            assert time.monotonic() - started >= 0.2  # --latency
            assert [m["id"] for m in listed.json()["data"]] == ["m1", "m2"]  # --models
            assert s.get(url + "/models", timeout=5).status_code == 401  # --api-key-env
            chat = s.post(url + "/chat/completions", json=BODY, headers=auth, timeout=5)
            assert chat.json()["choices"][0]["message"]["content"] == "echo: hi"
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
    assert EXPECTED_KEY not in out + err + url


def test_every_knob_of_the_class_is_an_option() -> None:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    options = {action.dest for action in parser._actions}
    knobs = set(inspect.signature(FakeCometServer).parameters) - {"clock"}  # (a test's clock)
    # The key it expects is read from an environment variable: a command line is public.
    assert {"api_key_env" if knob == "api_key" else knob for knob in knobs} <= options


def test_a_missing_key_variable_is_refused() -> None:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    with pytest.raises(SystemExit):
        server_from_arguments(parser, parser.parse_args(["--api-key-env", "NO_SUCH_VARIABLE_X"]))
