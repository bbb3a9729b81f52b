"""The README's Python blocks type-check under mypy --strict, as a user's code would (issue 23).

Each block is checked on its own, after a prelude that declares the names the README's prose
gives it (``client``, ``prompts``, ``jobs``, ``msgs``): a block that calls a method that does
not exist, passes a wrong argument or reads a field the wrong way fails here.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

# Spawns mypy: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

mypy_api = pytest.importorskip("mypy.api")

README = Path(__file__).resolve().parent.parent / "README.md"

PRELUDE = """\
from collections.abc import Iterable
from typing import Any

from comet_sync import ChatCompletionMessageParam, CometClient

client = CometClient(api_key="sk-readme-0123456789")
prompts: list[str] = ["Say hello."]
jobs: Iterable[Any] = []
msgs: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
"""


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


BLOCKS = _blocks()


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 10


def test_every_readme_block_passes_mypy_strict(tmp_path: Path) -> None:
    # One mypy run over one file per block (a run per block took 2 s each).
    offset = PRELUDE.count("\n") + 1
    paths = []
    for i, (_, code) in enumerate(BLOCKS):
        path = tmp_path / f"readme_block_{i}.py"
        path.write_text(PRELUDE + "\n" + textwrap.dedent(code))
        paths.append(str(path))
    out, _, _ = mypy_api.run(["--strict", "--no-incremental", "--python-version", "3.10", *paths])
    errors = []
    for line in out.splitlines():
        found = re.match(r".*readme_block_(\d+)\.py:(\d+): error: (.*)", line)
        if found:
            block, at, message = int(found.group(1)), int(found.group(2)), found.group(3)
            errors.append(f"README line {BLOCKS[block][0] + at - offset - 1}: {message}")
    assert errors == [], "\n".join(errors)
