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
    from comet_sync import CometClient, RequestRecord

    client = CometClient(api_key="sk-typing-0123456789")
    messages = [{"role": "user", "content": "hi"}]
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

BAD = """
    from comet_sync import CometClient

    client = CometClient(api_key="sk-typing-0123456789")
    reply = client.chat.completions.create(model="m", messages=[])
    reply.choises
    client.chat.completions.create(modle="m", messages=[])
"""


def check(source: str, tmp_path) -> list[str]:  # type: ignore[no-untyped-def]
    path = tmp_path / "user_code.py"
    path.write_text(textwrap.dedent(source))
    out, _, _ = mypy_api.run(
        ["--strict", "--no-incremental", "--python-version", "3.10", str(path)]
    )
    return [line for line in out.splitlines() if ": error:" in line]


def test_correct_user_code_passes_strict(tmp_path) -> None:
    assert check(GOOD, tmp_path) == []


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
