"""The names ``projections`` exports: what the query API, the write side and the
snapshotter build on. Every name another folder imports from it is exported."""

from __future__ import annotations

from _facades import check_facade

from orchestrator import projections


def test_the_public_names_are_exported_and_resolve() -> None:
    check_facade(projections, "projections")


def test_errors_hang_under_the_product_root() -> None:
    from orchestrator.events.errors import OrchestratorStateError

    for error in (
        projections.ProcessorFailed,
        projections.DeadLetterNotFound,
        projections.RebuildError,
    ):
        assert issubclass(error, projections.ProjectionError)
    assert issubclass(projections.ProjectionError, OrchestratorStateError)
