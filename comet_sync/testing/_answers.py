"""The fake server's canned answers: chat completions (whole or streamed), the Responses API,
embeddings, the models list and one model, and CometAPI-shaped error bodies. Pure functions of
the request."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from ._faults import Fault

__all__ = [
    "Answer",
    "StreamPlan",
    "StreamSettings",
    "attempt_key",
    "chat_answer",
    "embeddings_answer",
    "error_answer",
    "json_answer",
    "model_answer",
    "models_answer",
    "responses_answer",
]


@dataclass(frozen=True)
class StreamPlan:
    """A streamed answer: its events, and how the fault script spoils it (if it does)."""

    events: list[bytes]
    delay: float
    cut_after: int | None
    error_after: int | None
    done: bool
    rid: str


@dataclass(frozen=True)
class StreamSettings:
    """The server's knobs for streams: content chunks per answer (None: one a word), and the
    seconds between them."""

    chunks: int | None
    delay: float


# (status, body or stream plan, content type, extra headers)
Answer = tuple[int, Union[bytes, StreamPlan], str, dict[str, str]]


def models_answer(models: tuple[str, ...]) -> Answer:
    return json_answer(200, {"object": "list", "data": [_model(m) for m in models]})


def model_answer(models: tuple[str, ...], model: str) -> Answer:
    """``GET /models/{id}``: the model as the list has it, or OpenAI's 404 for an id it does
    not list (the body OpenAI sends, so code handling ``model_not_found`` can be tested)."""
    if model in models:
        return json_answer(200, _model(model))
    return json_answer(
        404,
        {
            "error": {
                "message": f"The model `{model}` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        },
    )


def _model(model: str) -> dict[str, Any]:
    return {
        "id": model,
        "object": "model",
        "created": 1_700_000_000,
        "owned_by": "fake",
        "supported_endpoint_types": ["openai"],
    }


def chat_answer(body: Any, rid: str, fault: Fault | None, stream: StreamSettings) -> Answer:
    if not isinstance(body, dict):
        return error_answer(400, "request body is not a JSON object", rid, code="invalid_request")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        # CometAPI answers a missing messages field with a 500, code invalid_request.
        return error_answer(500, "field messages is required", rid, code="invalid_request")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error_answer(400, "model is required", rid, code="invalid_request")
    text = _last_user_text(messages)
    content = f"echo: {text}"
    prompt_tokens = sum(len(_text_of(m).split()) for m in messages if isinstance(m, dict))
    completion_tokens = len(content.split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if body.get("stream"):
        return (
            200,
            _chat_stream(body, rid, content, usage, fault, stream),
            "text/event-stream",
            {"Cache-Control": "no-cache"},
        )
    return json_answer(
        200,
        {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        },
    )


def responses_answer(body: Any, rid: str, fault: Fault | None, stream: StreamSettings) -> Answer:
    """The Responses API: ``input`` (text or messages) echoed back as one output message;
    streamed as typed events (``event:`` lines), ending with ``response.completed`` and
    no ``[DONE]``, as OpenAI's does."""
    if not isinstance(body, dict) or body.get("input") in (None, "", []):
        return error_answer(400, "input is required", rid, code="invalid_request")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error_answer(400, "model is required", rid, code="invalid_request")
    given = body["input"]
    text = given if isinstance(given, str) else _last_user_text(given)
    content = f"echo: {text}"
    usage = {
        "input_tokens": len(text.split()),
        "output_tokens": len(content.split()),
        "total_tokens": len(text.split()) + len(content.split()),
    }
    message = {
        "type": "message",
        "id": f"msg-{rid}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": content, "annotations": []}],
    }
    response = {
        "id": f"resp-{rid}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [message],
        "usage": usage,
    }
    if not body.get("stream"):
        return json_answer(200, response)
    pieces = [
        f"{word} " if i + 1 < len(content.split()) else word
        for i, word in enumerate(content.split())
    ]
    events: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "response": {**response, "status": "in_progress", "output": [], "usage": None},
        }
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": f"msg-{rid}",
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
        }
        for piece in pieces
    ]
    events += [
        {
            "type": "response.output_text.done",
            "item_id": f"msg-{rid}",
            "output_index": 0,
            "content_index": 0,
            "text": content,
        },
        {"type": "response.completed", "response": response},
    ]
    return (
        200,
        StreamPlan(
            events=[f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events],
            delay=stream.delay,
            cut_after=fault.stream_cut_after if fault else None,
            error_after=fault.stream_error_after if fault else None,
            done=False,
            rid=rid,
        ),
        "text/event-stream",
        {"Cache-Control": "no-cache"},
    )


def _chat_stream(
    body: dict[str, Any],
    rid: str,
    content: str,
    usage: dict[str, int],
    fault: Fault | None,
    stream: StreamSettings,
) -> StreamPlan:
    n = stream.chunks if stream.chunks is not None else len(content.split())
    n = max(1, n)
    size = -(-len(content) // n)  # ceil: n pieces of the content
    pieces = [content[i * size : (i + 1) * size] for i in range(n)]
    head = {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_fake",
    }
    events: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        delta: dict[str, Any] = {"content": piece}
        if i == 0:
            delta["role"] = "assistant"
        events.append(
            {
                **head,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
                "obfuscation": "x",
            }
        )
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        events.append({**head, "choices": [], "usage": {**usage, "latency_checkpoint": 1}})
    return StreamPlan(
        events=[b"data: " + json.dumps(e).encode() + b"\n\n" for e in events],
        delay=stream.delay,
        cut_after=fault.stream_cut_after if fault else None,
        error_after=fault.stream_error_after if fault else None,
        done=not (fault and fault.stream_no_done),
        rid=rid,
    )


def embeddings_answer(body: Any, rid: str) -> Answer:
    if not isinstance(body, dict) or "input" not in body:
        return error_answer(400, "input is required", rid, code="invalid_request")
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    given = body.get("dimensions")
    dims = given if isinstance(given, int) else 8
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else json.dumps(item)
        tokens += len(text.split())
        digest = hashlib.sha256(text.encode()).digest()
        vector = [round((digest[j % len(digest)] - 128) / 128, 6) for j in range(dims)]
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return json_answer(
        200,
        {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def error_answer(status: int, message: str, rid: str, *, code: str) -> Answer:
    return json_answer(
        status,
        {
            "error": {
                "message": f"{message} (request id: {rid})",
                "type": "comet_api_error",
                "param": "",
                "code": code,
            }
        },
    )


def json_answer(status: int, data: Any) -> Answer:
    return status, json.dumps(data).encode("utf-8"), "application/json", {}


def _text_of(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message)
    return ""


def attempt_key(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        return _last_user_text(body["messages"])
    return ""
