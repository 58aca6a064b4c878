"""Retention: which snapshots ``snapshots prune`` deletes, and deleting them.

The plan is pure (records, policy, now, Kafka's earliest offsets in, decisions out) so
it can be printed before anything is deleted. Rules (``RetentionPolicy``) mark
snapshots; two per execution are protected whatever the rules say:

* its newest snapshot: the snapshotter and restore start from it;
* its newest snapshot at or before the earliest offset Kafka still holds for its
  partition: the events before that offset are gone from the log, so this snapshot is
  the last point from which the execution can be rebuilt with Kafka alone.

When Kafka's earliest offsets are unknown, the newest snapshot (always kept) is the
only one assumed to be needed for that.

With ``retention_days``, an execution that finished longer ago than that is also
*retired* (:func:`run_retention`): its read-model rows and archived events are deleted,
but only when its newest kept snapshot is terminal and at its last sequence, so that
snapshot (never deleted: it is the newest) restores it whole. One that no kept
snapshot covers so stays, and the report says why.

Given a :class:`~orchestrator.snapshots.blobretention.BlobRetention`, the same run then
deletes the claim-checked blobs nothing still readable references (the safety rule is
in ``snapshots.blobretention``), after the prune and the retirement, so the snapshots
and archive they deleted no longer count and the ones they keep always do.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.events import KafkaSecurity
from orchestrator.snapshots.index import SnapshotIndex, SnapshotRecord
from orchestrator.snapshots.policy import TERMINAL_STATUSES, RetentionPolicy
from orchestrator.snapshots.store import SnapshotStore

if TYPE_CHECKING:  # the read-model side (asyncpg) is imported only when a run needs it
    from orchestrator.projections import Finished, ReadModelTables, Retired
    from orchestrator.snapshots.blobretention import BlobRetention, BlobRun

logger = logging.getLogger(__name__)

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Decision:
    """A snapshot and why the plan deletes or keeps it."""

    record: SnapshotRecord
    reason: str


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What a prune would do."""

    delete: tuple[Decision, ...]
    protected: tuple[Decision, ...]
    """Snapshots a rule marked, kept because they are protected (the reason says which)."""
    kept: int
    """How many snapshots no rule marked."""

    @property
    def bytes_freed(self) -> int:
        return sum(d.record.size_bytes for d in self.delete)


def _newest_first(records: list[SnapshotRecord]) -> list[SnapshotRecord]:
    return sorted(records, key=lambda r: (r.sequence, r.log_order), reverse=True)


def plan_retention(
    records: Iterable[SnapshotRecord],
    policy: RetentionPolicy,
    *,
    now: datetime,
    earliest_offsets: Mapping[TP, int] | None = None,
) -> RetentionPlan:
    """Decide, per execution, which snapshots go."""
    by_execution: dict[str, list[SnapshotRecord]] = defaultdict(list)
    for record in records:
        by_execution[record.execution_id].append(record)
    earliest = earliest_offsets or {}
    delete: list[Decision] = []
    protected: list[Decision] = []
    kept = 0
    for execution_id in sorted(by_execution):
        ordered = _newest_first(by_execution[execution_id])
        newest = ordered[0]
        guards = {newest.object_key: "newest snapshot of the execution"}
        tp = (newest.position.topic, newest.position.partition)
        if tp in earliest:
            covering = next((r for r in ordered if r.position.offset <= earliest[tp]), None)
            if covering is not None:
                guards.setdefault(
                    covering.object_key,
                    f"newest at or before Kafka's earliest offset {earliest[tp]} of "
                    f"{tp[0]}[{tp[1]}]",
                )
        finished_long_ago = (
            policy.retention_days is not None
            and newest.status in TERMINAL_STATUSES
            and (newest.occurred_at or newest.created_at)
            < now - timedelta(days=policy.retention_days)
        )
        for rank, record in enumerate(ordered):
            reasons = []
            if policy.max_checkpoints is not None and rank >= policy.max_checkpoints:
                reasons.append(f"beyond the newest {policy.max_checkpoints}")
            if policy.max_age_days is not None and record.created_at < now - timedelta(
                days=policy.max_age_days
            ):
                reasons.append(f"older than {policy.max_age_days:g} days")
            if finished_long_ago:
                reasons.append(f"execution finished over {policy.retention_days:g} days ago")
            if not reasons:
                kept += 1
            elif record.object_key in guards:
                protected.append(Decision(record, f"kept: {guards[record.object_key]}"))
            else:
                delete.append(Decision(record, "; ".join(reasons)))
    return RetentionPlan(tuple(delete), tuple(protected), kept)


async def apply_plan(plan: RetentionPlan, *, index: SnapshotIndex, store: SnapshotStore) -> int:
    """Delete the plan's snapshots: index rows first, then objects, so the index never
    names a missing object (a crash in between leaves only unindexed objects)."""
    records = [d.record for d in plan.delete]
    if not records:
        return 0
    await index.remove(records)
    await store.delete([r.object_key for r in records])
    logger.info("pruned %s snapshot(s), %s bytes", len(records), plan.bytes_freed)
    return len(records)


@dataclass(frozen=True, slots=True)
class Retirement:
    """Which finished executions a retention run retires, and why the others stay."""

    retire: tuple[str, ...]
    stay: tuple[tuple[str, str], ...]
    """``(execution_id, reason)`` of finished executions no kept snapshot covers whole."""


def plan_retirement(
    finished: Iterable[Finished], records: Iterable[SnapshotRecord], plan: RetentionPlan
) -> Retirement:
    """Retire a finished execution only if its newest snapshot the plan keeps is
    terminal and at its last sequence: restore then needs nothing else."""
    deleted = {d.record.object_key for d in plan.delete}
    newest: dict[str, SnapshotRecord] = {}
    for r in records:
        if r.object_key in deleted:
            continue
        best = newest.get(r.execution_id)
        if best is None or (r.sequence, r.log_order) > (best.sequence, best.log_order):
            newest[r.execution_id] = r
    retire: list[str] = []
    stay: list[tuple[str, str]] = []
    for f in finished:
        snap = newest.get(f.execution_id)
        if snap is None:
            stay.append((f.execution_id, "no snapshot"))
        elif snap.status not in TERMINAL_STATUSES or snap.sequence != f.last_sequence:
            stay.append(
                (
                    f.execution_id,
                    f"newest snapshot at sequence {snap.sequence} ({snap.status})"
                    f" does not cover sequence {f.last_sequence}",
                )
            )
        else:
            retire.append(f.execution_id)
    return Retirement(tuple(retire), tuple(stay))


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What one retention run decided and (unless a dry run) did."""

    snapshots: RetentionPlan
    retirement: Retirement
    deleted_snapshots: int = 0
    retired: Retired | None = None
    """Rows the retirement deleted (``None``: a dry run)."""
    blobs: BlobRun | None = None
    """What blob retention found and deleted (``None``: not asked for)."""


async def run_retention(
    pool: Any,
    policy: RetentionPolicy,
    *,
    index: SnapshotIndex,
    store: SnapshotStore,
    tables: ReadModelTables,
    now: datetime,
    earliest: Mapping[TP, int] | None = None,
    dry_run: bool = False,
    blobs: BlobRetention | None = None,
) -> RetentionRun:
    """Prune snapshots (:func:`plan_retention`), retire the executions that finished
    over ``retention_days`` ago and that a kept snapshot covers whole, then (``blobs``)
    delete the blobs nothing kept references."""
    from orchestrator.projections import finished_before, retire_executions
    from orchestrator.snapshots.blobretention import run_blob_retention

    records = await index.all()
    plan = plan_retention(records, policy, now=now, earliest_offsets=earliest)
    finished: list[Finished] = []
    if policy.retention_days is not None:
        async with pool.acquire() as conn:
            cutoff = now - timedelta(days=policy.retention_days)
            finished = await finished_before(conn, tables, cutoff)
    retirement = plan_retirement(finished, records, plan)
    deleting = {d.record.object_key for d in plan.delete}
    kept = [r for r in records if r.object_key not in deleting]

    async def blob_run() -> BlobRun | None:
        if blobs is None:
            return None
        async with pool.acquire() as conn:
            return await run_blob_retention(
                conn,
                blobs,
                tables=tables,
                kept_snapshots=kept,
                snapshot_store=store,
                now=now,
                retiring=retirement.retire if dry_run else (),
                dry_run=dry_run,
            )

    if dry_run:
        return RetentionRun(plan, retirement, blobs=await blob_run())
    deleted = await apply_plan(plan, index=index, store=store)
    async with pool.acquire() as conn:
        retired = await retire_executions(conn, tables, list(retirement.retire))
    if retired.executions:
        logger.info(
            "retired %s finished execution(s): %s archived event(s) deleted; %s stay",
            retired.executions,
            retired.archived_events,
            len(retirement.stay),
        )
    return RetentionRun(plan, retirement, deleted, retired, await blob_run())


async def earliest_offsets(
    bootstrap: str, partitions: Iterable[TP], *, security: KafkaSecurity | None = None
) -> dict[TP, int]:
    """The earliest offset Kafka still holds for each of these partitions."""
    from orchestrator.events import ConsumerSettings, EventConsumer, TopicPartition

    tps = [TopicPartition(t, p) for t, p in set(partitions)]
    if not tps:
        return {}
    settings = ConsumerSettings() if security is None else ConsumerSettings(security=security)
    async with EventConsumer(bootstrap, settings) as consumer:
        found = await consumer.beginning_offsets(tps)
    return {(tp.topic, tp.partition): offset for tp, offset in found.items()}
