"""Every example runs as shipped, against the embedded fake server, and the demo too."""

from __future__ import annotations

import functools
import os
import pathlib
import subprocess
import sys

import pytest

# Spawns processes or runs real-time scenarios: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "COMETAPI_KEY",
            "COMET_API_KEY",
            "COMETAPI_API_KEY",
            "COMETAPI_BASE_URL",
            "DJANGO_SETTINGS_MODULE",
        )
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@functools.cache
def run_example(path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Each example is run once: the tests that read its output share the one run."""
    return run([str(path)])


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: pathlib.Path) -> None:
    result = run_example(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Traceback" not in result.stderr


def test_threaded_batch_loses_nothing() -> None:
    result = run_example(ROOT / "examples" / "threaded_batch.py")
    assert "60 answered, 0 failed, 0 lost" in result.stdout


def test_metrics_hook_prints_one_line_per_call() -> None:
    result = run_example(ROOT / "examples" / "metrics_hook.py")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 10


def test_demo_absorbs_faults_and_loses_nothing() -> None:
    result = run(["-m", "comet_sync", "demo", "--calls", "90"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "90 calls sent, 90 answered, 0 failed, 0 lost" in result.stdout
    assert "429s" in result.stdout


def test_cli_help() -> None:
    for args in (["--help"], ["demo", "--help"]):
        result = run(["-m", "comet_sync", *args])
        assert result.returncode == 0
        assert "usage:" in result.stdout
    bad = run(["-m", "comet_sync", "demo", "--calls", "0"])
    assert bad.returncode == 2 and "--calls" in bad.stderr


def test_django_project_runs() -> None:
    result = run([str(ROOT / "examples" / "django_project" / "run.py")])
    assert result.returncode == 0, result.stderr
    assert "echo: what is Django" in result.stdout
    assert "echo: stream me" in result.stdout
