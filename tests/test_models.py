from __future__ import annotations

import pytest

from comet_sync import ChatCompletion

RAW = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_1",
    "brand_new_field": {"nested": [1, 2]},
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "latency_checkpoint": 12,
    },
}


def test_attribute_access_in_the_openai_shape() -> None:
    c = ChatCompletion(RAW)
    assert c.id == "chatcmpl-1"
    assert c.model == "gpt-4o-2024-08-06"
    assert c.choices[0].finish_reason == "tool_calls"
    call = c.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Rome"}'
    assert c.usage.total_tokens == 7


def test_unknown_fields_are_kept() -> None:
    c = ChatCompletion(RAW)
    assert c.brand_new_field.nested == [1, 2]
    assert c.usage.latency_checkpoint == 12
    assert c["system_fingerprint"] == "fp_1"
    assert "brand_new_field" in c
    assert "brand_new_field" in dir(c)


def test_absent_known_fields_read_as_none_and_typos_raise() -> None:
    c = ChatCompletion({"choices": [{"message": {"content": "hi"}}]})
    assert c.usage is None
    assert c.choices[0].message.refusal is None
    assert c.choices[0].finish_reason is None
    with pytest.raises(AttributeError):
        _ = c.choises


def test_to_dict_is_the_raw_json_and_a_copy() -> None:
    c = ChatCompletion(RAW)
    d = c.to_dict()
    assert d == RAW
    d["choices"].clear()
    assert len(c.choices) == 1
    assert c == ChatCompletion(RAW)


def test_read_only() -> None:
    c = ChatCompletion(RAW)
    with pytest.raises(AttributeError):
        c.id = "x"
