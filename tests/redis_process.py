"""A throwaway redis-server on a free port, for the tests that need the real thing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest


def require_redis_server(*, module: bool = False) -> None:
    """Skip without a redis-server on the PATH, but fail on CI: .ci/run installs it, and the
    shared-limiter tests must run there."""
    if shutil.which("redis-server") is not None:
        return
    if os.environ.get("CI"):
        pytest.fail(
            "redis-server is missing on CI: .ci/run should have installed it", pytrace=False
        )
    pytest.skip("redis-server is not installed", allow_module_level=module)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.005)  # it listens within milliseconds
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
