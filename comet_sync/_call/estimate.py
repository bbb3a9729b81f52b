"""A rough token count of a request, for pacing against a tokens-per-minute ceiling.

It only has to be good enough to pace: the limiter corrects each estimate with the ``usage``
the answer reports. Four characters a token is the usual rule of thumb for English; the
answer is counted at its ``max_tokens`` when set, else at a modest default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["estimate_tokens"]

CHARS_PER_TOKEN = 4
# Tokens per message for role markers and separators in chat formats.
MESSAGE_OVERHEAD = 4
# The answer's size when max_tokens is not given: most chat answers are a few hundred tokens.
DEFAULT_COMPLETION_TOKENS = 256


def estimate_tokens(payload: Mapping[str, Any]) -> int:
    prompt_chars = 0
    messages = payload.get("messages") or []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, str):
            prompt_chars += len(content)
        elif content is not None:
            prompt_chars += len(json.dumps(content))
    prompt = prompt_chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD * len(messages)
    completion = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if not isinstance(completion, int) or isinstance(completion, bool) or completion <= 0:
        completion = DEFAULT_COMPLETION_TOKENS
    return prompt + completion
