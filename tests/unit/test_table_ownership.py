"""Only ``projections/`` issues SQL on the read model's tables (design §1).

Why: a table's shape lives in one folder; a module elsewhere that spells SQL on
``pipeline_states`` (or the archive, the offsets, the dead letters ...) breaks silently
when ``projections`` changes it. Others ask the ``orchestrator.projections`` facade
(``ReadModelQueries``, ``RecoveryReads``, ``BackupReads`` ...). The snapshot index is
``snapshots``' own table; ``leases`` is ``commands``'; the recovery tables the runtime's.

The scan reads every SQL string (a literal or an f-string, with its placeholders'
source, so ``{t.pipeline_states}`` counts) and every ``copy_*_table`` call.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.unit.test_layout import REPO, _python_files

SOURCES = ("events", "commands", "snapshots", "bench", "orchestrator", "examples")
READ_MODEL_TABLES = (
    "pipeline_states",
    "task_states",
    "checkpoints",
    "shared_variables",
    "execution_events",
    "shared_events",
    "projection_offsets",
    "dead_letters",
    "data_keys",
)
_SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE)\b")
_TABLE = re.compile(r"\b(" + "|".join(READ_MODEL_TABLES) + r")\b")
_NAMED_AT_RUN_TIME = re.compile(r"\{[^}]*(table|names\[)[^}]*\}")
"""A placeholder that names a table from configuration (``{table}``, ``{names['...']}``):
in ``orchestrator/`` and ``bench/`` those are the read model's (the lower folders keep
their own tables: ``leases``, the snapshot index)."""
_COPY_CALLS = {"copy_records_to_table", "copy_to_table", "copy_from_table"}


def _text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value
            if isinstance(v, ast.Constant)
            else "{" + ast.unparse(v.value if isinstance(v, ast.FormattedValue) else v) + "}"
            for v in node.values
        )
    return None


def _offences(path: Path, *, named_at_run_time: bool = True) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _COPY_CALLS and node.args:
                text = _text(node.args[0]) or ast.unparse(node.args[0])
                if _TABLE.search(text):
                    found.append(f"{node.lineno}: {node.func.attr}({text})")
        if isinstance(node, ast.expr) and id(node) not in inner:
            text = _text(node)
            if text and _SQL.search(text) and (table := _TABLE.search(text)):
                found.append(f"{node.lineno}: SQL on {table.group(1)}")
            elif text and named_at_run_time and _SQL.search(text):
                if named := _NAMED_AT_RUN_TIME.search(text):
                    found.append(f"{node.lineno}: SQL on {named.group(0)}")
    return found


def _modules() -> list[Path]:
    """Every module but the owners' (``projections/``) and the tests'."""
    return sorted(p for p in _python_files() if p.relative_to(REPO).parts[0] in SOURCES)


def _upper(path: Path) -> bool:
    return path.relative_to(REPO).parts[0] in ("orchestrator", "bench", "examples")


def test_only_projections_issues_sql_on_read_model_tables() -> None:
    offences = [
        f"{path.relative_to(REPO)}:{line}"
        for path in _modules()
        for line in _offences(path, named_at_run_time=_upper(path))
    ]
    assert not offences, (
        "SQL on a read-model table outside projections/; add a named method to a"
        " projections class (exported by its facade) and call it:\n" + "\n".join(offences)
    )


def test_the_scan_sees_f_strings_and_copies(tmp_path: Path) -> None:
    source = (
        "sql = f'SELECT * FROM {t.pipeline_states} WHERE x'\n"
        "await conn.copy_records_to_table('execution_events', records=[])\n"
        "q = f'DELETE FROM {self.tables[k]} WHERE TRUE'\n"
        "doc = 'pipeline_states holds one row per execution'\n"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert len(_offences(probe)) == 3
