"""HTTP transport: one ``requests`` session, and the one place transport errors are translated.

Thread safety: the session is built once and never mutated afterwards; requests' connection
pool (urllib3) is thread-safe, so every thread sends through the same transport.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ._config import Timeout
from ._exceptions import APIConnectionError, APITimeoutError

__all__ = ["Transport"]

# The pool holds one connection per in-flight request and a few spare, so reaching the
# concurrency limit never makes urllib3 discard a connection ("Connection pool is full").
POOL_HEADROOM = 4


class Transport:
    """Sends one HTTP attempt. Retries are the caller's: urllib3's own stay off."""

    def __init__(self, *, pool_size: int, user_agent: str) -> None:
        session = requests.Session()
        # total=0: urllib3 must never retry on its own, or attempts would multiply with ours.
        adapter = HTTPAdapter(
            pool_connections=4,
            pool_maxsize=pool_size + POOL_HEADROOM,
            max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = user_agent
        self._session = session

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        timeout: Timeout,
        stream: bool = False,
    ) -> requests.Response:
        try:
            return self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=(timeout.connect, timeout.read),
                # A redirect means a wrong base URL; following it would turn a POST into a GET.
                allow_redirects=False,
                stream=stream,
            )
        except requests.Timeout as exc:
            raise APITimeoutError(f"{method} {url}: timed out ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise APIConnectionError(
                f"{method} {url}: connection error ({type(exc).__name__}: {_reason(exc)})"
            ) from exc

    def iter_body(self, response: requests.Response) -> Iterator[bytes]:
        """A streamed body's bytes as they arrive; a connection that breaks mid-body raises
        APIConnectionError (APITimeoutError when a read timed out)."""
        try:
            # chunk_size=None: whatever the socket has, as soon as it has it.
            yield from response.iter_content(chunk_size=None)
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            raise APITimeoutError(f"reading the stream timed out ({type(exc).__name__})") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise APIConnectionError(
                f"the connection broke ({type(exc).__name__}: {_reason(exc)})"
            ) from exc

    def close(self) -> None:
        self._session.close()


def _reason(exc: BaseException) -> str:
    # requests nests urllib3's error (MaxRetryError(reason=NewConnectionError(...))); the
    # innermost one says what happened, the outer ones mostly repeat the URL.
    inner: BaseException = exc
    while True:
        nxt = getattr(inner, "reason", None)
        if isinstance(nxt, BaseException):
            inner = nxt
            continue
        if inner.args and isinstance(inner.args[0], BaseException):
            inner = inner.args[0]
            continue
        break
    return str(inner)[:200]
