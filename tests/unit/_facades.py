"""What a folder's facade (its ``__init__``) promises, checked against its users."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("events", "commands", "projections", "snapshots", "bench", "orchestrator", "tests")


def imported_from(module: str, folder: str) -> dict[str, list[str]]:
    """Each name imported ``from <module> import name`` by code outside ``folder``,
    with the files that import it."""
    users: dict[str, list[str]] = {}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.is_symlink() or path.resolve().is_relative_to(ROOT / folder):
                continue
            if not path.resolve().is_relative_to(ROOT) or ".venv" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module == module and not node.level:
                    for alias in node.names:
                        users.setdefault(alias.name, []).append(str(path.relative_to(ROOT)))
    return users


def check_facade(facade: ModuleType, folder: str) -> None:
    """``__all__`` lists each name once, every one resolves, and every name other
    folders import from the facade is in it (nothing reached through a side door)."""
    exported = list(facade.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice in __all__"
    assert [n for n in exported if not hasattr(facade, n)] == []
    users = imported_from(facade.__name__, folder)
    submodules = {p.stem for p in (ROOT / folder).iterdir() if p.suffix == ".py" or p.is_dir()}
    unexported = {
        name: files
        for name, files in users.items()
        if name not in exported and name not in submodules
    }
    assert unexported == {}, f"imported from {facade.__name__} but not in its __all__"
