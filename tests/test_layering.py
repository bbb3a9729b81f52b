"""The package's layers import downward only (issue 22): imports are parsed, not run.

    shared values  ->  _http  ->  _rate  ->  _call  ->  _resources  ->  _client
                   ->  _batch, _cli, _demo, contrib, testing, the package's __init__

A module may import its own layer and any layer before it. An import made only for type
checking (under ``if TYPE_CHECKING:``) counts too: it is a dependency a reader must follow.
The few upward imports left are listed with why; the list may only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "comet_sync"

SHARED = (
    "_cancel",
    "_clock",
    "_config",
    "_dump",
    "_exceptions",
    "_fanout",
    "_messages",
    "_observe",
    "_metrics",
    "_params",
    "_records",
    "_types",
    "_validation",
    "_version",
)
LAYERS: dict[str, int] = {
    **dict.fromkeys(SHARED, 0),
    "_http": 1,
    "_rate": 2,
    "_call": 3,
    "_resources": 4,
    "_client": 5,
    "_keyed": 5,  # the runtimes of views with another key: part of the client
    "_batch": 6,
    "_cli": 6,
    "_demo": 6,
    "contrib": 6,
    "testing": 6,
    "__init__": 7,
    "__main__": 7,
}

# Upward imports not yet turned around: (importer, imported) -> why it is still there.
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    ("_metrics", "_rate"): "the snapshot carries the limiter's state (LimiterState, typing)",
    ("_observe", "_rate"): "an observer is handed the limiter to read its state (typing)",
}


def _layer_of(module: str) -> str:
    """'comet_sync._call.engine' -> '_call'; 'comet_sync._metrics' -> '_metrics'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1] if len(parts) > 2 else [*parts[:-1], "__init__"]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every comet_sync module ``path`` imports, resolved to absolute names."""
    tree = ast.parse(path.read_text(), str(path))
    package = (
        _module_name(path).rsplit(".", 1)[0]
        if path.name != "__init__.py"
        else (".".join(path.relative_to(PACKAGE.parent).parent.parts))
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("comet_sync"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("comet_sync"):
                continue
            if target.count(".") == 0 or node.module is None:
                # "from . import x" / "from .. import _call": the names are modules.
                found.update(f"{target}.{a.name}" for a in node.names)
            else:
                found.add(target)
    return found


def _edges() -> set[tuple[str, str]]:
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        importer = _layer_of(_module_name(path))
        for imported in _imports(path):
            edges.add((importer, _layer_of(imported)))
    return edges


def test_every_module_belongs_to_a_layer() -> None:
    layers = {_layer_of(_module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert layers <= set(LAYERS), layers - set(LAYERS)


def test_imports_go_downward() -> None:
    upward = {(a, b) for a, b in _edges() if a != b and b in LAYERS and LAYERS[b] > LAYERS[a]}
    new = upward - set(KNOWN_UPWARD)
    assert not new, f"imports that go up a layer: {sorted(new)}"
    # A listed exception that is gone comes off the list, so that it cannot come back unseen.
    gone = set(KNOWN_UPWARD) - upward
    assert not gone, f"no longer imported upward, remove from KNOWN_UPWARD: {sorted(gone)}"
