"""Run the same script against the real API or, with no key, the embedded fake server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._config import API_KEY_ENV_VARS
from ._server import FakeCometServer

__all__ = ["real_or_fake"]

# The fake server accepts any token; this one only has to be non-empty.
FAKE_KEY = "fake-key-for-the-embedded-server"


@contextmanager
def real_or_fake(**server_knobs: Any) -> Iterator[dict[str, Any]]:
    """Yield ``CometClient`` keyword arguments: ``{}`` when a CometAPI key is in the
    environment (the client then reads it, and ``COMETAPI_BASE_URL``), otherwise the address
    of a :class:`FakeCometServer` started with ``server_knobs`` for the duration.

    >>> with real_or_fake(rps=50) as settings:
    ...     client = CometClient(**settings)
    """
    if any(os.environ.get(name) for name in API_KEY_ENV_VARS):
        yield {}
        return
    with FakeCometServer(**server_knobs) as server:
        yield {"api_key": FAKE_KEY, "base_url": server.base_url}
