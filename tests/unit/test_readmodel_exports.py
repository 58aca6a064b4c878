"""The names ``projections`` exports: what the query API, the write side and the
snapshotter build on. Removing one is a breaking change; this test makes it a choice."""

from __future__ import annotations

from orchestrator import projections

EXPORTED = {
    "DEFAULT_INDEXES",
    "IndexConfigError",
    "IndexState",
    "ensure_indexes",
    "index_status",
    "OFFSETS_CHANNEL",
    "SHARED_CHANGES_CHANNEL",
    "STATE_CHANGES_CHANNEL",
    "SWAPPED_CHANNEL",
    "DeadLetterNotFound",
    "DeadLetterRow",
    "EraseResult",
    "PostgresDataKeys",
    "Fence",
    "Finished",
    "PostgresOffsets",
    "ProcessorFailed",
    "ProjectionError",
    "ProjectionSettings",
    "Projector",
    "ReadModelStore",
    "ReadModelTables",
    "RebuildError",
    "RebuildProgress",
    "RebuildReport",
    "Rebuilder",
    "Retired",
    "TableNames",
    "applied_offset",
    "finished_before",
    "list_dead_letters",
    "migrate",
    "migration_status",
    "MigrationStatus",
    "prepare",
    "rebuild",
    "replay_dead_letter",
    "retire_executions",
    "run_processor",
    "wait_for_position",
    "add_kept_blobs",
    "close_kept_blobs",
    "open_kept_blobs",
    "referenced_blobs",
}


def test_the_public_names_are_exported_and_resolve() -> None:
    assert set(projections.__all__) == EXPORTED
    for name in EXPORTED:
        assert getattr(projections, name) is not None


def test_errors_hang_under_the_product_root() -> None:
    from orchestrator.events.errors import OrchestratorStateError

    for error in (
        projections.ProcessorFailed,
        projections.DeadLetterNotFound,
        projections.RebuildError,
    ):
        assert issubclass(error, projections.ProjectionError)
    assert issubclass(projections.ProjectionError, OrchestratorStateError)
