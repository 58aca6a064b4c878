"""The benches' rich tables: one way to lay out printed figures."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def table(title: str, *columns: str) -> Table:
    """An empty table: the first column names the row (left), the rest are figures (right)."""
    out = Table(title=title)
    for n, column in enumerate(columns):
        out.add_column(column, justify="left" if n == 0 else "right")
    return out


def figures_table(title: str, result: dict[str, Any]) -> Table:
    """A figure per row: its name, and its value (numbers with thousands separators)."""
    out = table(title, "figure", "value")
    for key, value in result.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        out.add_row(key, f"{value:,}" if number else str(value))
    return out
