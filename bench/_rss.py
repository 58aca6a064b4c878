"""Resident memory of a process, printed beside each bench's figures (issue: memory
stays flat as work grows). Linux ``/proc``; ``None`` where it is not there."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def _status(pid: int | None, field: str) -> float | None:
    path = Path(f"/proc/{'self' if pid is None else pid}/status")
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb(pid: int | None = None) -> float | None:
    """Resident set size in MiB now, of ``pid`` (this process when ``None``)."""
    return _status(pid, "VmRSS:")


def peak_rss_mb(pid: int | None = None) -> float | None:
    """The largest resident set size in MiB so far, of ``pid`` (this process if ``None``)."""
    return _status(pid, "VmHWM:")


def children_peak_rss_mb() -> float:
    """The largest resident set of any child process waited for so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
