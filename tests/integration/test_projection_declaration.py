"""A new read model is one declaration plus its registration.

The module-level ``TASK_COUNTS`` below is everything a read model needs: its table,
its fold and its migration. The processor folds the log into it exactly once (with
the same fenced batches as the seed's read model) and ``rebuild`` swaps a fresh copy
in, with no other file knowing about it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import _projector_support as support
import asyncpg
import pytest

from orchestrator.devstack import KafkaEndpoint
from orchestrator.events.consumer import DecodedRecord
from orchestrator.projections import Projection, Projector, Table, rebuild, register, unregister

TP = tuple[str, int]


@dataclass(slots=True)
class _Counts:
    next_offsets: dict[TP, int] = field(default_factory=dict)
    dead_letters: list[Any] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def states(self) -> Mapping[Hashable, Any]:
        return self.counts

    def rows(self) -> Mapping[str, Sequence[tuple[Any, ...]]]:
        return {"event_type_counts": sorted(self.counts.items())}

    def notifications(self) -> Mapping[str, Iterable[str]]:
        return {}


class _CountFold:
    """Events per event type: a deliberately small fold (every record counts)."""

    def keys(self, batch: Sequence[DecodedRecord]) -> dict[Hashable, TP | None]:
        return {r.envelope.event_type: None for r in batch if r.envelope is not None}

    async def load(
        self, conn: asyncpg.Connection, names: Mapping[str, str], keys: Sequence[Hashable]
    ) -> dict[Hashable, Any]:
        rows = await conn.fetch(
            f"SELECT event_type, events FROM {names['event_type_counts']}"
            " WHERE event_type = ANY($1::text[])",
            list(keys),
        )
        return {r["event_type"]: r["events"] for r in rows}

    def fold(
        self,
        batch: Sequence[DecodedRecord],
        states: Mapping[Hashable, Any | None],
        refused: Mapping[tuple[str, int, int], str] | None,
    ) -> _Counts:
        out = _Counts()
        for r in batch:
            pos = r.record.position
            out.next_offsets[(pos.topic, pos.partition)] = pos.offset + 1
            if r.envelope is not None:
                kind = r.envelope.event_type
                out.counts[kind] = out.counts.get(kind, states.get(kind) or 0) + 1
        return out


TASK_COUNTS = Projection(
    kind="test_event_type_counts",
    tables=(
        Table(
            key="event_type_counts",
            default="public.event_type_counts",
            columns=(("event_type", "text"), ("events", "bigint")),
            primary_key=("event_type",),
            write="upsert",
        ),
    ),
    fold=_CountFold(),
    migrations=(
        (
            "9001_event_type_counts.sql",
            "CREATE TABLE IF NOT EXISTS event_type_counts"
            " (event_type text PRIMARY KEY, events bigint NOT NULL);",
        ),
    ),
)


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    """The test's read model is known only while it runs: databases other tests
    migrate in this session get no table of it."""
    register(TASK_COUNTS)
    yield
    unregister(TASK_COUNTS.kind)


async def _counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_type, events FROM event_type_counts")
        return {r["event_type"]: r["events"] for r in rows}
    finally:
        await conn.close()


async def test_a_registered_read_model_is_folded_once_and_rebuilt(
    kafka: KafkaEndpoint, make_projection: support.MakeProjection
) -> None:
    p = await make_projection(3, name="counts", read_model=TASK_COUNTS.kind)
    events = support.mixed(support.histories(6, seed=7), seed=8)
    async with support.event_log(kafka.bootstrap_servers, p.topics, True) as log:
        await support.produce(log, events)
    expected: dict[str, int] = {}
    for e in events:
        expected[e.event_type] = expected.get(e.event_type, 0) + 1

    async def caught_up() -> bool:
        return await support.applied_total(p.dsn, "counts") >= len(events)

    async with support.running_worker(Projector(p.settings, p.dsn, kafka.bootstrap_servers)):
        await support.wait_until(caught_up, 60, "the new read model to catch up")
    assert await _counts(p.dsn) == expected

    report = await rebuild(p.settings, p.dsn, kafka.bootstrap_servers)
    assert report.swapped
    assert await _counts(p.dsn) == expected
