"""Types that catch mistakes: mypy --strict on user code, where mypy is installed (3.10+)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# Spawns processes or runs real-time scenarios: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

mypy_api = pytest.importorskip("mypy.api")

GOOD = """
    from comet_sync import ChatCompletionMessageParam, CometClient, RequestRecord

    client = CometClient(api_key="sk-typing-0123456789")
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    reply = client.chat.completions.create(model="m", messages=messages, temperature=0.2)
    text: str | None = reply.choices[0].message.content
    flag = bool(reply.usage)
    either = client.chat.completions.create(model="m", messages=messages, stream=flag)
    with client.chat.completions.create(model="m", messages=messages, stream=True) as stream:
        for chunk in stream:
            piece: str | None = chunk.choices[0].delta.content
    for done in client.chat.completions.map([{"model": "m", "messages": messages}]):
        print(done.choices[0].message.content)
    for item in client.chat.completions.map([], return_exceptions=True):
        print(item)
    print(client.responses.create(model="m", input="hi").output_text)
    print(client.metrics.snapshot())
"""

# The openai-python idioms of a tool loop, usage, optional fields, dumps and errors: what
# openai's types accept, ours must accept too.
PORTED = """
    import json
    from typing import Any

    from comet_sync import APIStatusError, ChatCompletionMessageParam, CometClient

    client = CometClient(api_key="sk-typing-0123456789")
    # As openai-python code annotates it (openai.types.chat.ChatCompletionMessageParam).
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "weather?"}]
    reply = client.chat.completions.create(model="m", messages=messages)
    message = reply.choices[0].message
    for tc in message.tool_calls or []:
        args: dict[str, Any] = json.loads(tc.function.arguments)
        name: str = tc.function.name
        messages.append({"role": "tool", "tool_call_id": tc.id, "content": str(args) + name})
    if reply.usage is not None:
        total: int = reply.usage.total_tokens + reply.usage.prompt_tokens
        details = reply.usage.prompt_tokens_details
        cached: int | None = details.cached_tokens if details is not None else None
    tier: str | None = reply.service_tier
    fingerprint: str | None = reply.system_fingerprint
    finish: str = reply.choices[0].finish_reason
    if reply.choices[0].logprobs and reply.choices[0].logprobs.content:
        first: float = reply.choices[0].logprobs.content[0].logprob
    annotations = message.annotations
    dumped: dict[str, Any] = reply.model_dump(exclude_none=True, exclude_unset=True)
    text: str = reply.to_json() + reply.model_dump_json(indent=2, exclude_none=True)
    plain: dict[str, Any] = reply.to_dict(exclude_none=True)
    changed = reply.model_copy(update={"model": "other"}, deep=True)
    model: str = changed.model
    fields: set[str] = reply.model_fields_set
    with client.chat.completions.create(model="m", messages=messages, stream=True) as stream:
        for chunk in stream:
            for part in chunk.choices[0].delta.tool_calls or []:
                index: int = part.index
                piece: str | None = part.function.arguments if part.function else None
    embedded: int = client.embeddings.create(model="e", input="x").usage.total_tokens
    try:
        client.chat.completions.create(model="m", messages=messages)
    except APIStatusError as e:
        where: str = e.request.method + " " + e.request.url
        said: object = e.body
        param: str | None = e.param
"""

BAD = """
    from comet_sync import CometClient

    client = CometClient(api_key="sk-typing-0123456789")
    reply = client.chat.completions.create(model="m", messages=[])
    reply.choises
    client.chat.completions.create(modle="m", messages=[])
"""


_CHECKED: dict[str, list[str]] = {}


def check(source: str, tmp_path) -> list[str]:  # type: ignore[no-untyped-def]
    """mypy --strict's errors on ``source`` as a user's file. The first call checks every
    snippet of this module in one mypy run (a run per snippet cost 2-5 s each)."""
    if source not in _CHECKED:
        snippets = [
            value
            for name, value in globals().items()
            if name.isupper() and isinstance(value, str) and "import" in value
        ]
        if source not in snippets:
            snippets.append(source)
        paths = []
        for i, snippet in enumerate(snippets):
            path = tmp_path / f"user_code_{i}.py"
            path.write_text(textwrap.dedent(snippet))
            paths.append(str(path))
        out, _, _ = mypy_api.run(
            ["--strict", "--no-incremental", "--python-version", "3.10", *paths]
        )
        for i, snippet in enumerate(snippets):
            mark = f"user_code_{i}.py:"
            _CHECKED[snippet] = [
                line for line in out.splitlines() if mark in line and ": error:" in line
            ]
    return _CHECKED[source]


def test_correct_user_code_passes_strict(tmp_path) -> None:
    assert check(GOOD, tmp_path) == []


def test_openai_idioms_type_check_as_they_do_under_openai(tmp_path) -> None:
    assert check(PORTED, tmp_path) == []


def test_typos_are_errors_before_they_run(tmp_path) -> None:
    errors = "\n".join(check(BAD, tmp_path))
    assert 'has no attribute "choises"' in errors
    assert 'Unexpected keyword argument "modle"' in errors


def test_the_installed_package_is_seen_by_mypy_outside_the_checkout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 23: after the README's `pip install -e .`, mypy said import-not-found for
    comet_sync in any directory but the checkout (setuptools' default editable mode is an
    import hook, which type checkers do not run). Run from elsewhere, as a user's project is,
    against the environment `make` installed the way the README says."""
    (tmp_path / "app.py").write_text(
        "from comet_sync import CometClient\n"
        "client = CometClient(api_key='sk-typing-0123456789')\n"
        "reveal_type(client.chat.completions)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "app.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")},
    )
    assert "import-not-found" not in done.stdout, done.stdout
    assert "Completions" in done.stdout, done.stdout


PARSE = """
    from pydantic import BaseModel

    from comet_sync import ChatCompletionMessageParam, CometClient, pydantic_function_tool

    class Capital(BaseModel):
        city: str

    client = CometClient(api_key="sk-typing-0123456789")
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    done = client.chat.completions.parse(model="m", messages=messages, response_format=Capital)
    capital: Capital | None = done.choices[0].message.parsed
    beta = client.beta.chat.completions.parse(model="m", messages=messages, response_format=Capital)
    also: Capital | None = beta.choices[0].message.parsed
    tools = [pydantic_function_tool(Capital)]
    called = client.chat.completions.parse(model="m", messages=messages, tools=tools)
    nothing: None = called.choices[0].message.parsed
    for call in called.choices[0].message.tool_calls or []:
        print(call.function.parsed_arguments, call.function.name)
    client.chat.completions.parse(model="m", messages=messages, response_format={"type": "text"})
"""

PARSE_BAD = """
    from pydantic import BaseModel

    from comet_sync import CometClient

    class Capital(BaseModel):
        city: str

    client = CometClient(api_key="sk-typing-0123456789")
    done = client.chat.completions.parse(model="m", messages=[], response_format=Capital)
    wrong: int | None = done.choices[0].message.parsed
    client.chat.completions.parse(model="m", messages=[], respons_format=Capital)
"""


def test_parse_is_typed_by_its_response_format(tmp_path) -> None:
    assert check(PARSE, tmp_path) == []
    errors = "\n".join(check(PARSE_BAD, tmp_path))
    assert 'expression has type "Capital | None", variable has type "int | None"' in errors
    assert "respons_format" in errors


SURFACE = """
    from pydantic import BaseModel

    from comet_sync import ChatCompletionMessageParam, CometClient

    class Capital(BaseModel):
        city: str

    client = CometClient(api_key="sk-typing-0123456789")
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    chat = client.chat.completions
    with chat.with_streaming_response.create(model="m", messages=messages, stream=True) as r:
        status: int = r.status_code
        for chunk in r.parse():
            piece: str | None = chunk.choices[0].delta.content
    with chat.with_streaming_response.create(model="m", messages=messages) as whole:
        text: str | None = whole.parse().choices[0].message.content
    raw = chat.with_raw_response.parse(model="m", messages=messages, response_format=Capital)
    capital: Capital | None = raw.parse().choices[0].message.parsed
    streamed = client.chat.with_raw_response.completions.create(
        model="m", messages=messages, stream=True
    )
    for part in streamed.parse().text_deltas():
        print(part)
    via_client = client.with_raw_response.chat.completions.create(model="m", messages=messages)
    content: str | None = via_client.parse().choices[0].message.content
    base: str = client.base_url
    retries: int = client.max_retries
    read: float | None = client.timeout.read
    other = client.copy(api_key="sk-other-0123456789", base_url="http://127.0.0.1:1/v1")
    other.with_options(max_retries=0).models.with_raw_response.list()
"""

SURFACE_BAD = """
    from comet_sync import CometClient

    client = CometClient(api_key="sk-typing-0123456789")
    chat = client.chat.completions
    with chat.with_streaming_response.create(model="m", messages=[], stream=True) as r:
        r.parse().choices
    client.with_options(api_kye="sk-other-0123456789")
    with client.with_streaming_response.chat.completions.create(
        model="m", messages=[], stream=True
    ) as also:
        also.parse().usage
"""


def test_raw_and_streaming_responses_are_typed_by_their_arguments(tmp_path) -> None:
    assert check(SURFACE, tmp_path) == []
    errors = "\n".join(check(SURFACE_BAD, tmp_path))
    assert '"Stream" has no attribute "choices"' in errors
    assert '"Stream" has no attribute "usage"' in errors
    assert 'Unexpected keyword argument "api_kye"' in errors


MESSAGES_GOOD = """
    import json

    from comet_sync import ChatCompletionMessageParam, CometClient

    client = CometClient(api_key="sk-typing-0123456789")
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is the weather?"}]},
    ]
    reply = client.chat.completions.create(model="m", messages=messages, tools=[])
    message = reply.choices[0].message
    messages.append(message)  # the reply's own message, as a tool loop appends it
    for call in message.tool_calls or []:
        args = json.loads(call.function.arguments)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": str(args)})
    client.chat.completions.create(model="m", messages=messages)
    client.chat.completions.create(
        model="m", messages=[{"role": "assistant", "content": None, "tool_calls": []}]
    )
"""

MESSAGES_BAD = """
    from comet_sync import CometClient

    client = CometClient(api_key="sk-typing-0123456789")
    client.chat.completions.create(model="m", messages=[{"role": "bot", "content": "hi"}])
    client.chat.completions.create(model="m", messages=[{"role": "tool", "content": "42"}])
"""


def test_messages_are_typed_per_role_as_openai_types_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 23: messages were Mapping[str, Any], so role "bot" passed the checker."""
    assert check(MESSAGES_GOOD, tmp_path) == []
    errors = check(MESSAGES_BAD, tmp_path)
    assert len(errors) == 2, errors
    assert all('"messages" to "create"' in e or "List item 0" in e for e in errors), errors
