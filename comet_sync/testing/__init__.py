"""Test helpers users can use too: a fake CometAPI server on loopback.

>>> from comet_sync.testing import FakeCometServer
>>> with FakeCometServer(rps=50) as server:
...     ...  # point a CometClient at server.base_url

For code in another process or language: ``python -m comet_sync.testing --port 8080 --rps 50``
(or ``comet-sync fake-server``) runs it until Ctrl-C and prints its base URL.
"""

from ._env import real_or_fake
from ._server import DEFAULT_MODELS, FakeCometServer, Fault, ReceivedRequest, ServerStats

__all__ = [
    "DEFAULT_MODELS",
    "FakeCometServer",
    "Fault",
    "ReceivedRequest",
    "ServerStats",
    "real_or_fake",
]
