"""The benches print resident memory beside their figures: read from ``/proc``."""

from __future__ import annotations

import os
import subprocess
import sys

from orchestrator.bench._rss import children_peak_rss_mb, peak_rss_mb, rss_mb


def test_this_process_s_memory_is_read_and_its_peak_is_not_below_it() -> None:
    now, peak = rss_mb(), peak_rss_mb()
    assert now is not None and peak is not None
    assert 1 < now <= peak
    assert rss_mb(os.getpid()) is not None


def test_a_gone_process_has_no_figure_rather_than_an_error() -> None:
    done = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert done.returncode == 0
    assert rss_mb(2**22 + 12345) is None
    assert children_peak_rss_mb() > 1  # the child just waited for
