"""chat.completions.parse: a pydantic model's strict schema out, a validated object back."""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest

import comet_sync

from .conftest import user

pydantic = pytest.importorskip("pydantic")


class Capital(pydantic.BaseModel):
    city: str
    country: str
    # Optional, not "int | None": pydantic evaluates the annotation, on 3.9 too.
    population: Optional[int] = None  # noqa: UP045


def completion(content: Any, refusal: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
    }


def test_the_schema_goes_out_strict_and_the_answer_comes_back_validated(server, client):
    server.respond_next(
        completion(json.dumps({"city": "Rome", "country": "Italy", "population": None}))
    )
    reply = client.chat.completions.parse(
        model="m", messages=user("capital of Italy?"), response_format=Capital, temperature=0
    )
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Capital) and parsed.city == "Rome"
    sent = server.received[-1].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "country", "population"]
    assert reply.choices[0].message.content  # the JSON view is still there


def test_an_answer_that_does_not_fit_is_pydantics_error_as_from_openai(server, client):
    server.respond_next(completion(json.dumps({"city": "Rome"})))
    with pytest.raises(pydantic.ValidationError, match="Capital"):
        client.chat.completions.parse(model="m", messages=user("x"), response_format=Capital)


def test_a_refusal_parses_to_none(server, client):
    server.respond_next(completion(None, refusal="I cannot help with that."))
    reply = client.chat.completions.parse(model="m", messages=user("x"), response_format=Capital)
    assert reply.choices[0].message.parsed is None
    assert reply.choices[0].message.refusal


def test_create_points_a_model_class_to_parse(server, client):
    with pytest.raises(comet_sync.InvalidArgumentError, match=r"parse\(") as caught:
        client.chat.completions.create(model="m", messages=user("x"), response_format=Capital)
    assert caught.value.argument == "response_format" and server.stats().requests == 0
