"""The design's layout: import arrows point one way, and our package names are ours.

Walks every module's imports with ``ast`` (no import side effects), so a sideways or
upward import fails here with the file and line that made it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "commands", "projections", "snapshots", "orchestrator")

# Who may import whom (design §1). ``orchestrator`` is the top and may import all.
ALLOWED: dict[str, set[str]] = {
    "events": set(),
    "commands": {"events"},
    "projections": {"events"},
    "snapshots": {"events", "projections"},
    "orchestrator": {"events", "commands", "projections", "snapshots"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_import_arrows_point_one_way(package: str) -> None:
    offences = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                offences.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not offences, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(
        offences
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_package_names_resolve_to_this_repository(package: str) -> None:
    # ``events`` and friends are common names: a same-named package installed from
    # PyPI must never shadow ours.
    module = importlib.import_module(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == REPO / package
