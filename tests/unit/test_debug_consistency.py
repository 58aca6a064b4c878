"""The consistency check folds a history exactly as the processor does.

``check`` compares every read-model row with the row the fold of the history would
produce; if its fold kept different books than the processor (event_count, last
position, a task's updated_at) it would report false mismatches on a healthy
database. These tests pin it to the processor's own pure core
(``projections._batch.fold_batch``) over messy logs: duplicates, zombie writes and
sequence gaps.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import replace

import pytest

from orchestrator.debug.folding import FoldedExecution, compare_execution, compare_row
from orchestrator.events import catalogue as c
from orchestrator.events.codec import default_codec
from orchestrator.events.consumer import DecodedRecord, RawRecord
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.simulate import simulate_execution
from orchestrator.projections import readmodel as rm
from orchestrator.projections._batch import fold_batch

TOPIC = "pipeline"


def _messy(seed: int) -> list[Envelope]:
    """A history with producer retries (duplicates) and zombie writes of an old epoch."""
    rng = random.Random(seed)
    clean = simulate_execution(f"exec_{seed}", rng, tasks=6, takeovers=True)
    out: list[Envelope] = []
    epoch = clean[0].epoch
    for event in clean:
        out.append(event)
        if isinstance(event.payload, c.ExecutionOwnershipTaken):
            epoch = event.payload.epoch
            if rng.random() < 0.7:
                out.append(replace(event, epoch=epoch - 1, sequence=(out[-2].sequence or 0) + 1,
                                   payload=c.TaskScheduled(task_id="task_0")))  # fmt: skip
        elif rng.random() < 0.15:
            out.append(event)
    return [replace(e, event_id=str(uuid.uuid4())) for e in out]


def _records(events: list[Envelope]) -> list[DecodedRecord]:
    codec = default_codec()
    out = []
    for offset, event in enumerate(events):
        raw = RawRecord(Position(TOPIC, 0, offset), event.key(), codec.encode(event), 0)
        out.append(DecodedRecord(raw, event, None))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_the_check_keeps_the_same_books_as_the_processor(seed: int) -> None:
    events = _messy(seed)
    changes = fold_batch(_records(events), {events[0].execution_id or "": None}, {})
    folded = FoldedExecution(events[0].execution_id or "")
    for offset, event in enumerate(events):
        folded.add(Position(TOPIC, 0, offset), event)
    want_pipeline, want_tasks = folded.expected_rows()
    [pipeline] = changes.pipeline_rows()
    assert pipeline == want_pipeline
    tasks = {row[1]: row for row in changes.task_rows()}
    assert tasks == want_tasks
    mapping = rm.as_mapping(rm.PIPELINE_COLUMNS, pipeline)
    task_rows = [rm.as_mapping(rm.TASK_COLUMNS, row) for row in tasks.values()]
    assert compare_execution(folded, mapping, task_rows) == []
    assert folded.sequence_gaps() == []


def test_a_changed_value_is_named_with_both_sides() -> None:
    events = _messy(3)
    folded = FoldedExecution(events[0].execution_id or "")
    for offset, event in enumerate(events):
        folded.add(Position(TOPIC, 0, offset), event)
    pipeline, tasks = folded.expected_rows()
    row = rm.as_mapping(rm.PIPELINE_COLUMNS, pipeline)
    actual = folded.state
    assert actual is not None
    corrupted = {**row, "status": "cancelled", "completed_tasks": '["nope"]'}
    found = compare_row(rm.PIPELINE_COLUMNS, pipeline, corrupted)
    assert found == [
        ("status", "cancelled", actual.status),
        ("completed_tasks", ["nope"], list(actual.completed_tasks)),
    ]
    # jsonb as the driver returns it (text, spaced differently) is not a difference.
    spaced = {**row, "context": (rm.dumps(dict(actual.context)) or "").replace(":", ": ")}
    assert compare_row(rm.PIPELINE_COLUMNS, pipeline, spaced) == []
    task_rows = [rm.as_mapping(rm.TASK_COLUMNS, r) for r in tasks.values()]
    extra = {**task_rows[0], "task_id": "ghost"}
    mismatches = compare_execution(folded, row, [*task_rows[1:], extra])
    assert {(m.task_id, m.field, m.read_model, m.fold) for m in mismatches} == {
        ("ghost", "<row>", "present", "absent"),
        (task_rows[0]["task_id"], "<row>", "absent", "present"),
    }


def test_a_missing_event_is_reported_as_a_sequence_gap() -> None:
    events = [e for e in _messy(5) if e.sequence != 4]
    folded = FoldedExecution(events[0].execution_id or "")
    for offset, event in enumerate(events):
        folded.add(Position(TOPIC, 0, offset), event)
    [gap] = folded.sequence_gaps()
    assert (gap.expected, gap.got) == (4, 5)
    refused = [e for e in events if e.sequence is not None and e.sequence >= 5]
    assert gap.refused >= len({e.sequence for e in refused})
    later = next(e for e in events[3:] if e.sequence is not None)
    headless = FoldedExecution("exec_x")
    headless.add(Position(TOPIC, 0, 0), later)
    [first] = headless.sequence_gaps()
    assert (first.expected, first.got) == (1, later.sequence)
    assert headless.state is None
