"""comet_sync: a synchronous, thread-safe client for CometAPI.

Bounded concurrency, retries with full jitter and a cap on every wait, and a record of every
call, over one ``requests`` session shared by all threads. See ``CometClient``.
"""

import logging

from ._batch.engine import BatchJob, BatchResult, BatchRun, run_batch
from ._call.cache import ResponseCache
from ._call.deadline import deadline, time_left
from ._call.streaming import ResponseStream, Stream
from ._client import CometClient
from ._clock import Clock
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
    ContentFilterFinishReasonError,
    InternalServerError,
    InvalidArgumentError,
    LengthFinishReasonError,
    LimiterTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestSnapshot,
    RequestTooLargeError,
    ResponseSnapshot,
    TLSError,
    UnprocessableEntityError,
)
from ._messages import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionDeveloperMessageParam,
    ChatCompletionFunctionMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
)
from ._metrics import Metrics, RouteStats, Snapshot, format_table
from ._params import NOT_GIVEN, NotGiven
from ._rate.protocol import LimiterProtocol, LimiterState, ModelState
from ._records import RequestRecord
from ._resources.function_tools import pydantic_function_tool
from ._resources.models import ModelPage
from ._resources.raw import RawResponse
from ._resources.structured import ParsedChatCompletion
from ._types import (
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
    "ChatCompletionAssistantMessageParam",
    "ChatCompletionChunk",
    "ChatCompletionDeveloperMessageParam",
    "ChatCompletionFunctionMessageParam",
    "ChatCompletionMessage",
    "ChatCompletionMessageParam",
    "ChatCompletionSystemMessageParam",
    "ChatCompletionToolMessageParam",
    "ChatCompletionUserMessageParam",
    "Choice",
    "ClientClosedError",
    "Clock",
    "CometClient",
    "CometError",
    "ContentFilterFinishReasonError",
    "CreateEmbeddingResponse",
    "Embedding",
    "InternalServerError",
    "InvalidArgumentError",
    "LengthFinishReasonError",
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
    "RequestSnapshot",
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
    "TLSError",
    "Timeout",
    "ToolCall",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "deadline",
    "format_table",
    "pydantic_function_tool",
    "run_batch",
    "time_left",
]

# A library logs nowhere until the application configures logging.
logging.getLogger("comet_sync").addHandler(logging.NullHandler())
