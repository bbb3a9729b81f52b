"""Shared fixtures: a fake CometAPI server on loopback and clients with fake time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from comet_sync import CometClient
from comet_sync.testing import FakeCometServer

SECRET = "sk-test-5f1e2d3c4b5a69788796a5b4c3d2e1f0"


class FakeTime:
    """A monotonic clock that only moves when something sleeps; records every sleep."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def server() -> Iterator[FakeCometServer]:
    with FakeCometServer() as srv:
        yield srv


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(
    server: FakeCometServer, fake_time: FakeTime
) -> Iterator[Callable[..., CometClient]]:
    """Build clients against the fake server with fake time; random() is 0.5 unless given, and
    backoff_base is 1 s unless given, so the waits the tests expect are round numbers."""
    clients: list[CometClient] = []

    def make(**kwargs: Any) -> CometClient:
        kwargs.setdefault("api_key", SECRET)
        kwargs.setdefault("base_url", server.base_url)
        kwargs.setdefault("clock", fake_time.monotonic)
        kwargs.setdefault("sleep", fake_time.sleep)
        kwargs.setdefault("random", lambda: 0.5)
        kwargs.setdefault("backoff_base", 1.0)
        client = CometClient(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., CometClient]) -> CometClient:
    return make_client()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
