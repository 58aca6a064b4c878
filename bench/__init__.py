"""Benchmarks that print figures (never timed assertions in tests).

Each benchmark's entry is exported here (``run_<name>_bench`` / ``run_compare`` and
``render_<name>``), so the CLI reaches them through this facade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.events import lazy_exports

if TYPE_CHECKING:
    from orchestrator.bench.append import render as render_append
    from orchestrator.bench.append import run_append_bench
    from orchestrator.bench.cache import render as render_cache
    from orchestrator.bench.cache import run_cache_bench
    from orchestrator.bench.checkpoint import render as render_checkpoint
    from orchestrator.bench.checkpoint import run_checkpoint_bench
    from orchestrator.bench.compare import CompareOptions, PeersMissing, run_compare
    from orchestrator.bench.compare import render as render_compare
    from orchestrator.bench.memory import render as render_memory
    from orchestrator.bench.memory import run_memory_bench
    from orchestrator.bench.project import render as render_project
    from orchestrator.bench.project import run_project_bench
    from orchestrator.bench.replay import render as render_replay
    from orchestrator.bench.replay import run_replay_bench
    from orchestrator.bench.restore import render as render_restore
    from orchestrator.bench.restore import run_restore_bench
    from orchestrator.bench.resume import render as render_resume
    from orchestrator.bench.resume import run_resume_bench

# Each bench loads on first use: ``python -m orchestrator.bench.<one>`` (the kill-and-resume
# children) imports this package first, and the benches together pull in the whole
# product and the peers' checks (~5 s of a loaded machine's process start).
__getattr__ = lazy_exports(
    __name__,
    {
        "render_append": ".append:render",
        "run_append_bench": ".append",
        "render_cache": ".cache:render",
        "run_cache_bench": ".cache",
        "render_checkpoint": ".checkpoint:render",
        "run_checkpoint_bench": ".checkpoint",
        "CompareOptions": ".compare",
        "PeersMissing": ".compare",
        "run_compare": ".compare",
        "render_compare": ".compare:render",
        "render_memory": ".memory:render",
        "run_memory_bench": ".memory",
        "render_project": ".project:render",
        "run_project_bench": ".project",
        "render_replay": ".replay:render",
        "run_replay_bench": ".replay",
        "render_restore": ".restore:render",
        "run_restore_bench": ".restore",
        "render_resume": ".resume:render",
        "run_resume_bench": ".resume",
    },
)

__all__ = [
    "CompareOptions",
    "PeersMissing",
    "render_append",
    "render_cache",
    "render_checkpoint",
    "render_compare",
    "render_memory",
    "render_project",
    "render_replay",
    "render_restore",
    "render_resume",
    "run_append_bench",
    "run_cache_bench",
    "run_checkpoint_bench",
    "run_compare",
    "run_memory_bench",
    "run_project_bench",
    "run_replay_bench",
    "run_restore_bench",
    "run_resume_bench",
]
