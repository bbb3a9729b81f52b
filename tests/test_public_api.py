import pathlib

import comet_sync
import comet_sync.testing

EXPECTED = {
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
    "ChatCompletionMessageParam",
    "ChatCompletionSystemMessageParam",
    "ChatCompletionDeveloperMessageParam",
    "ChatCompletionUserMessageParam",
    "ChatCompletionAssistantMessageParam",
    "ChatCompletionToolMessageParam",
    "ChatCompletionFunctionMessageParam",
    "Choice",
    "ClientClosedError",
    "Clock",
    "CometClient",
    "CometError",
    "InternalServerError",
    "InvalidArgumentError",
    "LimiterProtocol",
    "LimiterState",
    "LimiterTimeoutError",
    "ModelState",
    "Metrics",
    "NotFoundError",
    "PermissionDeniedError",
    "RateControl",
    "RateLimitError",
    "RequestRecord",
    "RequestTooLargeError",
    "RequestSnapshot",
    "ResponseSnapshot",
    "RetryConfig",
    "RouteStats",
    "Snapshot",
    "Timeout",
    "TLSError",
    "ToolCall",
    "ChatCompletionChunk",
    "CreateEmbeddingResponse",
    "Embedding",
    "Model",
    "ResponseCache",
    "Stream",
    "UnprocessableEntityError",
    "BatchJob",
    "BatchResult",
    "BatchRun",
    "ModelPage",
    "NOT_GIVEN",
    "NotGiven",
    "ParsedChatCompletion",
    "LengthFinishReasonError",
    "ContentFilterFinishReasonError",
    "pydantic_function_tool",
    "RawResponse",
    "Response",
    "ResponseStream",
    "ResponseStreamEvent",
    "run_batch",
    "Usage",
    "__version__",
    "format_table",
    "deadline",
    "time_left",
}


def test_all_is_pinned() -> None:
    # A change to the public surface must be a deliberate edit of this list too.
    assert set(comet_sync.__all__) == EXPECTED
    for name in comet_sync.__all__:
        assert hasattr(comet_sync, name), name


def test_testing_surface() -> None:
    assert set(comet_sync.testing.__all__) == {
        "DEFAULT_MODELS",
        "FakeCometServer",
        "Fault",
        "ReceivedRequest",
        "ServerStats",
        "real_or_fake",
    }


def test_modules_are_private() -> None:
    package = pathlib.Path(comet_sync.__file__).parent
    for path in package.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py", "apps.py") or "contrib" in path.parts:
            continue  # contrib.flask, contrib.django, ... are public integration modules
        parts = path.relative_to(package).parts  # a module, or a package it lives in
        assert any(part.startswith("_") for part in parts), f"{path} should be private"


def test_exception_tree_matches_openai_names() -> None:
    e = comet_sync
    assert issubclass(e.RateLimitError, e.APIStatusError)
    assert issubclass(e.APIStatusError, e.APIError)
    assert issubclass(e.APITimeoutError, e.APIConnectionError)
    assert issubclass(e.APIResponseValidationError, e.APIError)
    assert issubclass(e.InternalServerError, e.APIStatusError)
    assert issubclass(e.InvalidArgumentError, ValueError)
    assert issubclass(e.APIError, e.CometError)


def test_py_typed_is_shipped() -> None:
    assert (pathlib.Path(comet_sync.__file__).parent / "py.typed").exists()
