"""comet_sync: a synchronous, thread-safe client for CometAPI.

Bounded concurrency, retries with full jitter and a cap on every wait, and a record of every
call, over one ``requests`` session shared by all threads. See ``CometClient``.
"""

import logging

from ._batch import BatchJob, BatchResult, BatchRun, run_batch
from ._cache import ResponseCache
from ._catalog import ModelPage
from ._client import CometClient
from ._clock import Clock
from ._config import DEFAULT_BASE_URL, RateControl, RetryConfig, Timeout
from ._deadline import deadline, time_left
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
    LimiterTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ResponseSnapshot,
    UnprocessableEntityError,
)
from ._limiter import LimiterProtocol, LimiterState, ModelState
from ._metrics import Metrics, RouteStats, Snapshot, format_table
from ._models import (
    APIObject,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    CreateEmbeddingResponse,
    Embedding,
    Model,
    Response,
    ResponseStreamEvent,
    ToolCall,
    Usage,
)
from ._params import NOT_GIVEN, NotGiven
from ._raw import RawResponse
from ._records import RequestRecord
from ._streaming import ResponseStream, Stream
from ._structured import ParsedChatCompletion
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "APIObject",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchJob",
    "BatchResult",
    "BatchRun",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ClientClosedError",
    "Clock",
    "CometClient",
    "CometError",
    "CreateEmbeddingResponse",
    "Embedding",
    "InternalServerError",
    "InvalidArgumentError",
    "LimiterProtocol",
    "LimiterState",
    "LimiterTimeoutError",
    "Metrics",
    "Model",
    "ModelPage",
    "ModelState",
    "NotFoundError",
    "NotGiven",
    "ParsedChatCompletion",
    "PermissionDeniedError",
    "RateControl",
    "RateLimitError",
    "RawResponse",
    "RequestRecord",
    "RequestTooLargeError",
    "Response",
    "ResponseCache",
    "ResponseSnapshot",
    "ResponseStream",
    "ResponseStreamEvent",
    "RetryConfig",
    "RouteStats",
    "Snapshot",
    "Stream",
    "Timeout",
    "ToolCall",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "deadline",
    "format_table",
    "run_batch",
    "time_left",
]

# A library logs nowhere until the application configures logging.
logging.getLogger("comet_sync").addHandler(logging.NullHandler())
