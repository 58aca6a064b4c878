"""How ``snapshots prune`` reports blob retention: one line, plus the reason when it
could delete nothing."""

from __future__ import annotations

from rich.console import Console

from orchestrator.snapshots import BlobRun


def print_blob_run(console: Console, run: BlobRun | None, *, deleting: bool) -> None:
    if run is None:
        console.print("blobs: no listable blob store configured: none deleted")
        return
    if run.note:
        console.print(f"blobs: {run.note}")
        return
    verb = f"deleted {run.deleted}" if deleting else f"{len(run.delete)} to delete"
    console.print(
        f"blobs: {run.listed} listed, {verb} ({run.bytes_freed} bytes); kept:"
        f" {run.referenced} referenced, {run.young} inside the grace or Kafka's retention,"
        f" {run.foreign} not ours"
        + (f", {run.rewritten} written again meanwhile" if run.rewritten else "")
    )
