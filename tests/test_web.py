"""Flask and Django: one client per process, views under load, deadlines, error answers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from werkzeug.serving import make_server

from comet_sync.testing import FakeCometServer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.djangoproj.settings")


@contextmanager
def serve(wsgi_app) -> Iterator[str]:
    """A real threaded WSGI server (werkzeug's) on loopback."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    # A short poll: with werkzeug's default (0.5 s) each shutdown waited up to half a second.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def hit(url: str, n: int) -> list[requests.Response]:
    def one(i: int) -> requests.Response:
        with requests.Session() as s:
            return s.get(f"{url}?q=question-{i}", timeout=60)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


# -- Flask -------------------------------------------------------------------------------------


def flask_app(fake: FakeCometServer, **config):
    from flask import Flask, jsonify, request

    from comet_sync.contrib.flask import CometSync, get_client

    app = Flask("test")
    app.config.update(
        COMETAPI_KEY="flask-test-key-0123456789",
        COMETAPI_BASE_URL=fake.base_url,
        COMET_SYNC_MAX_CONCURRENCY=4,
        **config,
    )
    CometSync(app)

    @app.get("/ask")
    def ask():
        reply = get_client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": request.args["q"]}]
        )
        return jsonify(answer=reply.choices[0].message.content)

    return app


@pytest.mark.slow
def test_flask_under_32_concurrent_requests(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3")
    with FakeCometServer(max_in_flight=4, latency=0.05) as fake:
        app = flask_app(fake)
        with serve(app) as url:
            responses = hit(url + "/ask", 32)
        assert [r.status_code for r in responses] == [200] * 32
        assert {r.json()["answer"] for r in responses} == {f"echo: question-{i}" for i in range(32)}
        assert fake.stats().max_in_flight <= 4
        assert fake.stats().statuses.get(429, 0) == 0  # the client never sent a 5th
        assert "Connection pool is full" not in caplog.text
        app.extensions["comet_sync"].close()


@pytest.mark.slow
def test_flask_deadline_answers_503_with_retry_after_within_budget() -> None:
    # A server that 429s forever, asking for a 1 s wait each time.
    with FakeCometServer(max_in_flight=0, retry_after=1) as fake:
        app = flask_app(fake, COMET_SYNC_VIEW_DEADLINE=2)
        with serve(app) as url:
            started = time.monotonic()
            r = requests.get(url + "/ask?q=x", timeout=30)
            elapsed = time.monotonic() - started
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "1"
        assert r.json()["error"]["type"] == "upstream_rate_limited"
        assert "total_timeout" in r.json()["error"]["message"]
        assert elapsed < 2.0 + 0.5  # the 2 s budget, plus the slack of a loaded machine
        app.extensions["comet_sync"].close()


@pytest.mark.slow
def test_flask_views_held_by_rate_control_answer_503_with_retry_after() -> None:
    """Issue 21, item 3: calls our limiter held past the view's deadline answered 504 without
    Retry-After (mapped as upstream timeouts), where the README promises 503 + Retry-After."""
    with FakeCometServer() as fake:
        # 6 requests a minute: after the first, each view would wait its turn 10 s apart.
        app = flask_app(fake, COMET_SYNC_VIEW_DEADLINE=2, COMET_SYNC_RPM=6)
        with serve(app) as url:
            responses = hit(url + "/ask", 8)
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200 and set(statuses) == {200, 503}, statuses
        for r in responses:
            if r.status_code == 503:
                assert r.json()["error"]["type"] == "held_by_rate_control"
                assert int(r.headers["Retry-After"]) >= 1
        assert fake.stats().requests == statuses.count(200)
        app.extensions["comet_sync"].close()


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (lambda fake: fake.fail(500, code="invalid_request"), 502),
        (lambda fake: fake.fail(401), 502),
        (lambda fake: fake.delay_next(1.0), 504),
    ],
)
def test_flask_error_mapping(fault, status) -> None:
    with FakeCometServer() as fake:
        app = flask_app(fake, COMET_SYNC_TIMEOUT=0.3, COMET_SYNC_MAX_RETRIES=0)
        fault(fake)
        r = app.test_client().get("/ask?q=x")
        assert r.status_code == status
        assert r.get_json()["error"]["request_id"] is not None or status == 504
        app.extensions["comet_sync"].close()


def test_flask_metrics_endpoint() -> None:
    with FakeCometServer() as fake:
        app = flask_app(fake, COMET_SYNC_METRICS_URL="/metrics")
        client = app.test_client()
        client.get("/ask?q=a")
        text = client.get("/metrics").get_data(as_text=True)
        assert (
            'comet_sync_requests_total{model="gpt-4o-mini",route="/chat/completions",'
            'status="200"} 1.0' in text
        )
        assert "comet_sync_request_latency_seconds_bucket" in text
        assert "comet_sync_concurrency_limit" in text
        app.extensions["comet_sync"].close()


# -- Django ------------------------------------------------------------------------------------


@pytest.fixture
def django_fake() -> Iterator[FakeCometServer]:
    import django
    from django.conf import settings

    django.setup()
    from comet_sync.contrib.django import reset_client

    with FakeCometServer(max_in_flight=4, latency=0.05) as fake:
        settings.COMETAPI_BASE_URL = fake.base_url
        reset_client()
        yield fake
        reset_client()


@pytest.mark.slow
def test_django_live_server_under_32_concurrent_requests(django_fake, caplog) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    caplog.set_level(logging.WARNING, logger="urllib3")
    with serve(WSGIHandler()) as url:
        responses = hit(url + "/ask", 32)
    assert [r.status_code for r in responses] == [200] * 32
    assert responses[7].json() == {"answer": "echo: question-7"}
    assert django_fake.stats().max_in_flight <= 4
    assert "Connection pool is full" not in caplog.text


def test_django_client_is_one_per_process(django_fake) -> None:
    from comet_sync.contrib.django import get_client

    clients = set()
    barrier = threading.Barrier(16)

    def grab() -> None:
        barrier.wait()
        clients.add(id(get_client()))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(clients) == 1


@pytest.mark.slow
def test_django_error_mapping_and_deadline(django_fake) -> None:
    from django.test import Client

    django_fake.configure(max_in_flight=0, retry_after=1)  # 429 forever
    started = time.monotonic()
    r = Client().get("/ask?q=x")
    assert time.monotonic() - started < 2.5  # COMET_SYNC["view_deadline"] is 2 s
    assert r.status_code == 503 and r["Retry-After"] == "1"
    assert r.json()["error"]["type"] == "upstream_rate_limited"
    django_fake.configure(max_in_flight=None, retry_after=None, outage=502)
    r = Client().get("/ask?q=y")
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"


def test_django_metrics_view(django_fake) -> None:
    from django.test import Client

    Client().get("/ask?q=z")
    text = Client().get("/metrics").content.decode()
    assert "comet_sync_requests_total" in text and "comet_sync_in_flight" in text
