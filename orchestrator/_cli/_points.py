"""The options naming a point of an execution's history, one spelling per meaning in
every command (``replay``, ``fork``, ``snapshots restore``):

* ``--seq N``: the state after the event at sequence N;
* ``--at-time T``: the state at a time (``1h``, ``30m``, ``2d`` ago, or ISO 8601, UTC
  when it names no zone).

``--at`` meant a sequence in ``replay``/``fork`` and a time in ``snapshots restore``;
it, ``replay --until`` and ``snapshots restore --sequence`` are refused with the new
name (hidden options whose callback refuses any value).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``1h``, ``30m``, ``2d``, ``1h30m``, ``45s`` (that long ago) or an ISO 8601 time
    (UTC when it names no zone)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match and any(match.groups()):
        d, h, m, s = (int(g or 0) for g in match.groups())
        return now - timedelta(days=d, hours=h, minutes=m, seconds=s)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected e.g. 1h, 30m, 2d or an ISO time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def seq_option(help: str = "State at this sequence.") -> Any:
    """``--seq N``."""
    return typer.Option(None, "--seq", min=1, help=help)


def at_time_option(help: str = "State at this time (ISO 8601, or 1h/30m/2d ago).") -> Any:
    """``--at-time T`` (parse it with :func:`parse_when`)."""
    return typer.Option(None, "--at-time", help=help)


def renamed_option(old: str, new: str) -> Any:
    """A hidden ``old`` option that refuses any value, naming ``new``."""

    def refuse(value: str | None) -> None:
        if value is not None:
            raise typer.BadParameter(f"{old} was renamed: use {new}")

    return typer.Option(None, old, hidden=True, callback=refuse, show_default=False)


AT_RENAMED = "--seq N (a sequence) or --at-time T (a time)"
