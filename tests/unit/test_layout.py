"""The design's layout: one import name, and the repository's folders beneath it.

The arrows between folders are import-linter's job (``[tool.importlinter]`` in
pyproject.toml, run by ``make lint``): this module does not keep a second copy of
them. It checks what import-linter cannot see: that each repository folder is the
package a user imports, and that no module imports a folder by its bare name (which
would load a second copy of it, and fail in an installed wheel).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("events", "commands", "projections", "snapshots", "bench")
SOURCES = (*FOLDERS, "orchestrator", "tests", "examples")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _python_files() -> list[Path]:
    files: list[Path] = []
    for source in SOURCES:
        root = REPO / source
        # orchestrator/ links to the other folders: walk only its own files.
        files.extend(p for p in root.rglob("*.py") if p.resolve().is_relative_to(root))
    return files


def test_no_module_imports_a_folder_by_its_bare_name() -> None:
    offences = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _python_files()
        for line, module in _imports(path)
        if module.split(".")[0] in FOLDERS
    ]
    assert not offences, "import them as orchestrator.<folder>:\n" + "\n".join(offences)


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_folder_installs_under_orchestrator(folder: str) -> None:
    module = importlib.import_module(f"orchestrator.{folder}")
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == REPO / folder


def test_schemas_are_read_from_the_package() -> None:
    from orchestrator.events.schemas import schemas_root

    assert schemas_root().resolve() == REPO / "schemas"
