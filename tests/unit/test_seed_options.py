"""Every option of the seed's YAML blocks is honoured or refused by name: none loads with
a warning, none is accepted and ignored, and the option table says which, row by row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import ConfigError, load_config_file

ROOT = Path(__file__).resolve().parents[2]
SEED_BLOCKS = sorted((ROOT / "examples" / "seed").glob("*.yaml"))
TABLE = ROOT / "README.md"
_ROW = re.compile(r"^\| `([^`]+)` \| (.*) \| (.+) \|$")


def _leaves(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every value's option path in a block (list items' keys under ``name[]``)."""
    if isinstance(data, dict) and data:
        found = []
        for key, value in data.items():
            found.extend(_leaves(value, (*prefix, str(key))))
        return found
    if isinstance(data, list) and data and all(isinstance(i, dict) for i in data):
        found = []
        for item in data:
            found.extend(_leaves(item, (*prefix[:-1], prefix[-1] + "[]")))
        return found
    return [prefix]


def _rows() -> dict[str, str]:
    """Option path (as the table writes it) -> its status cell."""
    rows = {}
    for line in TABLE.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            rows[match.group(1)] = f"{match.group(2)} | {match.group(3)}"
    return rows


def _pattern(row_path: str) -> re.Pattern[str]:
    """A row's path as a pattern over dotted paths: ``…`` is any prefix, ``*`` one key."""
    body = re.escape(row_path.lstrip("…"))
    body = body.replace(r"\*", r"[^.]+")
    anchored = "^" if not row_path.startswith("…") else r"^(?:.+\.)?"
    return re.compile(anchored + body + "$")


def _row_for(path: tuple[str, ...], rows: dict[str, str]) -> tuple[str, str] | None:
    """The row of ``path``; else of its nearest ancestor when that row covers what is
    inside it (a free-form mapping of user data, or a refused block)."""
    for end in range(len(path), 0, -1):
        dotted = ".".join(path[:end])
        for row_path, row in rows.items():
            status = row.rsplit(" | ", 1)[-1]
            covers = end == len(path) or "free-form" in row or status.startswith("**refused**")
            if covers and _pattern(row_path).match(dotted):
                return row_path, row
    return None


@pytest.mark.parametrize("block", SEED_BLOCKS, ids=lambda p: p.stem)
def test_a_seed_block_loads_without_warnings_or_is_refused_by_name(block: Path) -> None:
    try:
        loaded = load_config_file(block, environ={})
    except ConfigError as refused:
        assert refused.issues
        for issue in refused.issues:  # each names its option and says why
            assert issue.option and issue.mark is not None
            assert "not a setting" in issue.message or "not supported" in issue.message
        return
    assert loaded.warnings == []


@pytest.mark.parametrize("block", SEED_BLOCKS, ids=lambda p: p.stem)
def test_every_option_of_a_seed_block_has_a_row_that_acts_or_refuses(block: Path) -> None:
    rows = _rows()
    for path in _leaves(yaml.safe_load(block.read_text())):
        found = _row_for(path, rows)
        assert found is not None, f"{block.name}: no row in {TABLE.name} for {'.'.join(path)}"
        row_path, row = found
        status = row.rsplit(" | ", 1)[-1]
        assert "**acts**" in status or "**refused**" in status, (row_path, status)


def test_the_table_has_no_option_that_warns_or_is_ignored() -> None:
    statuses = " ".join(_rows().values())
    assert "**warns**" not in statuses and "**ignored**" not in statuses


def test_a_refused_row_is_refused_by_the_loader(tmp_path: Path) -> None:
    """The table's refusals are the loader's: the seed's state blocks fail, naming them."""
    refused = {
        "01_task_state": "task_state",
        "02_shared_state": "shared_state.locks",
    }
    for stem, option in refused.items():
        with pytest.raises(ConfigError) as info:
            load_config_file(ROOT / "examples" / "seed" / f"{stem}.yaml", environ={})
        assert option in {issue.option for issue in info.value.issues}
    config_without_backend = tmp_path / "c.yaml"
    config_without_backend.write_text("state_management:\n  config:\n    base_path: /x\n")
    with pytest.raises(ConfigError, match=r"needs state_management\.backend"):
        load_config_file(config_without_backend, environ={})
