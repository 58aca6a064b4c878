"""Machine-readable output: every listing takes ``--json`` and prints through here."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import date, datetime
from typing import Any

import typer

JSON_OPTION: Any = typer.Option(False, "--json", help="Print JSON for machines.")


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def to_json(obj: Any) -> str:
    """``obj`` as one line of JSON; dataclasses, times and bytes included."""
    return json.dumps(obj, default=_default, ensure_ascii=False)


def emit_json(obj: Any) -> None:
    """Write ``obj`` as one JSON line on stdout (nothing else goes to stdout with --json)."""
    sys.stdout.write(to_json(obj) + "\n")
    sys.stdout.flush()
