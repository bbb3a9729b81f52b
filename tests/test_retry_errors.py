"""Which output lines ``--resume --retry-errors`` sends again: the retry policy's word on the
error each line records (``may_heal_later``), in both output formats, never a list of class
names of the batch's own."""

from __future__ import annotations

from typing import Any

import pytest

from comet_sync._batch.jsonl import is_retryable_error


def comet_line(kind: str, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    body = {"error": {"message": "m", "code": code}} if status is not None else None
    message = f"{status} from /chat/completions: m" if status is not None else "m"
    error = {"type": kind, "status": status, "message": message, "request_id": None}
    if status is not None:
        error["body"] = body
    return {"custom_id": "a", "metadata": None, "error": error, "attempts": 1, "latency": 0.1}


def openai_answer(status: int, code: str | None = None) -> dict[str, Any]:
    body = {"error": {"message": "m", "code": code}}
    response = {"status_code": status, "request_id": None, "body": body}
    return {"id": "batch_req_1", "custom_id": "a", "response": response, "error": None}


def openai_error(kind: str) -> dict[str, Any]:
    return {"id": "batch_req_1", "custom_id": "a", "response": None, "error": {"code": kind}}


@pytest.mark.parametrize(
    ("line", "heals"),
    [
        (comet_line("InternalServerError", 503), True),
        (comet_line("RateLimitError", 429), True),
        (comet_line("APIConnectionError"), True),
        (comet_line("APITimeoutError"), True),
        (comet_line("BadRequestError", 400), False),
        (comet_line("TLSError"), False),  # the same certificate next time
        (comet_line("APIResponseValidationError"), False),
        (comet_line("InvalidInput"), False),  # (no error of ours: a line that was never sent)
        (openai_answer(502), True),
        (openai_answer(401), False),
        (openai_answer(200), False),
        (openai_error("APIConnectionError"), True),
        (openai_error("InvalidInput"), False),
        ({"custom_id": "a", "response": {"id": "chatcmpl-1"}, "request_id": "r"}, False),
    ],
)
def test_what_the_policy_retries_is_sent_again(line: dict[str, Any], heals: bool) -> None:
    assert is_retryable_error(line) is heals


@pytest.mark.parametrize(
    "line",
    [
        comet_line("InternalServerError", 500, "invalid_request"),
        comet_line("InternalServerError", 503, "model_not_found"),
        openai_answer(503, "model_not_found"),
        comet_line("InternalServerError", 501),  # (any 5xx matched by the class name before)
    ],
)
def test_what_the_policy_calls_permanent_is_not(line: dict[str, Any]) -> None:
    # CometAPI's permanent look-alikes of retryable statuses: sent again, they fail again.
    assert not is_retryable_error(line)


@pytest.mark.parametrize(
    "line",
    [
        comet_line("LimiterTimeoutError"),
        comet_line("LimiterUnavailableError"),
        openai_error("LimiterTimeoutError"),
        comet_line("RateLimitError", 429, "insufficient_quota"),
        openai_answer(429, "insufficient_quota"),
    ],
)
def test_what_binds_one_run_only_is_sent_again(line: dict[str, Any]) -> None:
    # Not retried within a call (our limiter's budget, a spent balance), but a later run is
    # not held by this run's limiter, and a balance is topped up between runs.
    assert is_retryable_error(line)
