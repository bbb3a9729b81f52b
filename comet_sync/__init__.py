"""comet_sync: a synchronous, thread-safe client for CometAPI.

Bounded concurrency, retries with full jitter and a cap on every wait, and a record of every
call, over one ``requests`` session shared by all threads. See ``CometClient``.
"""

import logging

from ._client import CometClient
from ._config import DEFAULT_BASE_URL, RateControl, RetryConfig, Timeout
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    CometError,
    InternalServerError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from ._limiter import LimiterState
from ._metrics import Metrics, RequestRecord, RouteStats, Snapshot, format_table
from ._models import APIObject, ChatCompletion, ChatCompletionMessage, Choice, ToolCall, Usage
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "APIObject",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletion",
    "ChatCompletionMessage",
    "Choice",
    "ClientClosedError",
    "CometClient",
    "CometError",
    "InternalServerError",
    "InvalidArgumentError",
    "LimiterState",
    "Metrics",
    "NotFoundError",
    "PermissionDeniedError",
    "RateControl",
    "RateLimitError",
    "RequestRecord",
    "RequestTooLargeError",
    "RetryConfig",
    "RouteStats",
    "Snapshot",
    "Timeout",
    "ToolCall",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "format_table",
]

# A library logs nowhere until the application configures logging.
logging.getLogger("comet_sync").addHandler(logging.NullHandler())
