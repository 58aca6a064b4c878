"""Retention planning: rules mark snapshots; the newest and the covering one stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.events.envelope import Position
from orchestrator.snapshots.errors import SnapshotConfigError
from orchestrator.snapshots.index import MemorySnapshotIndex, SnapshotRecord
from orchestrator.snapshots.policy import RetentionPolicy
from orchestrator.snapshots.retention import RetentionPlan, apply_plan, plan_retention
from orchestrator.snapshots.store import MemorySnapshotStore

NOW = datetime(2024, 3, 1, tzinfo=UTC)
TOPIC = "orchestrator.pipeline.events"


def _record(eid: str, seq: int, *, days_old: float, status: str = "running") -> SnapshotRecord:
    created = NOW - timedelta(days=days_old)
    return SnapshotRecord(
        execution_id=eid,
        pipeline_id="p",
        sequence=seq,
        epoch=1,
        status=status,
        object_key=f"p/{eid}/{seq:012d}.snap",
        store="memory://test",
        position=Position(TOPIC, 0, seq * 10),
        size_bytes=100,
        raw_size_bytes=400,
        created_at=created,
        occurred_at=created,
    )


def _history(eid: str, count: int, *, status: str = "running") -> list[SnapshotRecord]:
    """``count`` snapshots, one a day, the newest today; the newest has ``status``."""
    return [
        _record(
            eid,
            100 * (i + 1),
            days_old=count - 1 - i,
            status=status if i == count - 1 else "running",
        )
        for i in range(count)
    ]


def _deleted(plan: RetentionPlan) -> set[tuple[str, int]]:
    return {(d.record.execution_id, d.record.sequence) for d in plan.delete}


def test_max_checkpoints_keeps_the_newest_per_execution() -> None:
    records = _history("a", 5) + _history("b", 2)
    plan = plan_retention(records, RetentionPolicy(max_checkpoints=3, max_age_days=None), now=NOW)
    assert _deleted(plan) == {("a", 100), ("a", 200)}
    assert plan.kept == 5 and plan.bytes_freed == 200


def test_max_age_never_takes_the_newest_snapshot() -> None:
    records = [*_history("a", 10), _record("old", 100, days_old=30)]
    plan = plan_retention(records, RetentionPolicy(max_checkpoints=None, max_age_days=7), now=NOW)
    assert _deleted(plan) == {("a", 100), ("a", 200)}  # 9 and 8 days old
    assert [(d.record.execution_id, d.reason) for d in plan.protected] == [
        ("old", "kept: newest snapshot of the execution")
    ]


def test_the_snapshot_covering_history_kafka_deleted_is_kept() -> None:
    records = _history("a", 6)  # offsets 1000, 2000, ... 6000
    policy = RetentionPolicy(max_checkpoints=1, max_age_days=None)
    unknown = plan_retention(records, policy, now=NOW)
    assert _deleted(unknown) == {("a", s) for s in (100, 200, 300, 400, 500)}
    plan = plan_retention(records, policy, now=NOW, earliest_offsets={(TOPIC, 0): 3500})
    assert _deleted(plan) == {("a", s) for s in (100, 200, 400, 500)}
    (kept,) = plan.protected
    assert kept.record.sequence == 300 and "earliest offset 3500" in kept.reason


def test_finished_executions_past_retention_keep_only_protected_snapshots() -> None:
    done = [
        _record("done", s, days_old=40 - s / 100, status="completed" if s == 300 else "running")
        for s in (100, 200, 300)
    ]
    recent = _history("recent", 3, status="completed")
    running = [_record("running", s, days_old=40) for s in (100, 200)]
    policy = RetentionPolicy(max_checkpoints=None, max_age_days=None, retention_days=30)
    plan = plan_retention(done + recent + running, policy, now=NOW)
    assert _deleted(plan) == {("done", 100), ("done", 200)}
    assert [d.record.sequence for d in plan.protected] == [300]


async def test_apply_removes_index_rows_and_objects() -> None:
    store, index = MemorySnapshotStore(), MemorySnapshotIndex()
    records = _history("a", 4)
    for r in records:
        await store.put(r.object_key, b"x")
    await index.add(records)
    plan = plan_retention(records, RetentionPolicy(max_checkpoints=2, max_age_days=None), now=NOW)
    assert await apply_plan(plan, index=index, store=store) == 2
    assert [r.sequence for r in await index.candidates("a")] == [400, 300]
    assert await store.list() == sorted(r.object_key for r in records[2:])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_checkpoints": 0}, "max_checkpoints"),
        ({"max_age_days": 0}, "max_age_days"),
        ({"retention_days": -1}, "retention_days"),
    ],
)
def test_bad_retention_settings_name_the_key(kwargs: dict[str, float], key: str) -> None:
    with pytest.raises(SnapshotConfigError, match=key):
        RetentionPolicy(**kwargs)  # type: ignore[arg-type]
