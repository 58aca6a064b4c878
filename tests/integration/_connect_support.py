"""The config file of the tests that go through ``orchestrator.connect()``."""

from __future__ import annotations

from pathlib import Path


def write_config(
    tmp_path: Path,
    prefix: str,
    *,
    partitions: int | None = 2,
    state: str = "",
    event_store: str = "",
    extra: str = "",
) -> Path:
    """``tmp_path/orchestrator.yaml``: the event store on ``<prefix>.pipeline`` and
    ``<prefix>.shared`` (``partitions`` each, or the default), snapshots under
    ``tmp_path/snapshots``; ``state`` and ``event_store`` are more lines of those blocks
    (indented), ``extra`` more top-level blocks."""
    path = tmp_path / "orchestrator.yaml"
    path.write_text(
        "state_management:\n"
        f"{state}"
        "  event_store:\n"
        + (f"    partitions: {partitions}\n" if partitions is not None else "")
        + "    topics:\n"
        f"      pipeline_events: {prefix}.pipeline\n"
        f"      shared_events: {prefix}.shared\n"
        f"{event_store}"
        f"  snapshots:\n    storage: file://{tmp_path / 'snapshots'}\n"
        f"{extra}"
    )
    return path
