"""pyright, the other checker users run (VS Code's Pylance is pyright), on the package as
installed and on user code (issue 23): ``--verifytypes`` scores the public interface's type
completeness; the README's Python blocks and the examples check clean.

pyright's PyPI wrapper fetches the checker from the npm registry on first use and runs it on
Node.js: where either is missing the tests skip (the test extra installs the wrapper only on
Python 3.10+, as mypy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .test_readme import BLOCKS, PRELUDE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PYRIGHT = shutil.which("pyright", path=str(Path(sys.executable).parent))
if PYRIGHT is None or shutil.which("node") is None:
    pytest.skip("pyright or Node.js is not installed", allow_module_level=True)

# The README's bar: what a user's checker infers of our public names, nearly all of it.
MIN_COMPLETENESS = 98.0
# Public classes whose base class is an optional library's (Django's AppConfig,
# OpenTelemetry's BaseInstrumentor, Celery's Task).
THIRD_PARTY_BASES = frozenset(
    {
        "comet_sync.contrib.django.apps.CometSyncConfig",
        "comet_sync.contrib.otel.CometSyncInstrumentor",
        "comet_sync.contrib.celery.CometTask",
    }
)


def _pyright(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [str(PYRIGHT), "--outputjson", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_installed_package_is_nearly_completely_typed(tmp_path: Path) -> None:
    # --verifytypes reads a package installed as users get it (an editable install's path
    # file is not a package directory to it): a wheel's contents in a bare venv.
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    site = next(env_dir.glob("lib/python3*/site-packages"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(ROOT),
        ],
        check=True,
        timeout=600,
    )
    env = {**os.environ, "VIRTUAL_ENV": str(env_dir)}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    report = _pyright("--verifytypes", "comet_sync", "--ignoreexternal", cwd=tmp_path, env=env)
    completeness = report["typeCompleteness"]
    exported = [symbol for symbol in completeness["symbols"] if symbol["isExported"]]
    unknown = [symbol["name"] for symbol in exported if not symbol["isTypeKnown"]]
    # Scored without the classes that subclass an optional integration's own class: the bare
    # venv has none of those libraries, so no annotation of ours makes them known here.
    scored = [symbol for symbol in exported if symbol["name"] not in THIRD_PARTY_BASES]
    score = 100.0 * sum(symbol["isTypeKnown"] for symbol in scored) / len(scored)
    assert score >= MIN_COMPLETENESS, (score, unknown[:20])


def test_the_readme_blocks_and_the_examples_check_clean(tmp_path: Path) -> None:
    files = []
    for i, (_, code) in enumerate(BLOCKS):
        path = tmp_path / f"readme_block_{i}.py"
        path.write_text(PRELUDE + "\n" + code)
        files.append(str(path))
    files += [str(p) for p in sorted((ROOT / "examples").rglob("*.py"))]
    report = _pyright("--pythonpath", sys.executable, *files, cwd=tmp_path)
    errors = [
        f"{Path(d['file']).name}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]
    assert errors == [], "\n".join(errors)
