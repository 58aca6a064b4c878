"""The read-model rows hold the folded state losslessly, and batches fold exactly once.

The processor folds each batch on top of states *read back from its rows*; if a row
lost anything (a field, the task order) the read model would drift from the log. The
batch tests run the processor's pure core against an in-memory table and cut the
log into random batches: the result must not depend on where the cuts fall.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.events import catalogue as c
from orchestrator.events.codec import default_codec
from orchestrator.events.consumer import DecodedRecord, RawRecord
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError
from orchestrator.events.fold import fold, step, step_shared
from orchestrator.events.simulate import interleave, simulate_execution
from orchestrator.events.state import ExecutionState, SharedVariable
from orchestrator.events.userdata import encode_user_data
from orchestrator.projections import readmodel as rm
from orchestrator.projections._batch import ExecutionEntry, fold_batch, touched_keys
from tests.histories import flaky_log, running_writer

TOPIC = "pipeline"


def _uuid_ids(events: list[Envelope]) -> list[Envelope]:
    """The codec wants UUID event ids; ``simulate_execution`` makes readable ones."""
    return [replace(e, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, e.event_id))) for e in events]


def _rows_roundtrip(state: ExecutionState) -> ExecutionState:
    pipeline = rm.as_mapping(
        rm.PIPELINE_COLUMNS, rm.pipeline_row(state, event_count=1, last_position=None)
    )
    tasks = [rm.as_mapping(rm.TASK_COLUMNS, r) for r in rm.task_rows(state)]
    random.Random(0).shuffle(tasks)  # rows come back in any order
    listed = [
        rm.as_mapping(rm.CHECKPOINT_COLUMNS, rm.checkpoint_ref_row(state, ref, None))
        for ref in state.checkpoints
    ]
    random.Random(1).shuffle(listed)
    return rm.execution_from_rows(pipeline, tasks, rm.live_checkpoints(listed))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_state_of_a_history_survives_its_rows(seed: int) -> None:
    rng = random.Random(seed)
    history = simulate_execution("exec_1", rng, tasks=rng.randint(1, 8))
    state = None
    for event in history:
        state = step(state, event).state
        assert state is not None
        assert _rows_roundtrip(state) == state


def test_unusual_values_survive_their_rows() -> None:
    at = datetime(2024, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)
    history = simulate_execution("exec_x", random.Random(7), tasks=3)
    state = fold(history)
    assert state is not None
    state = replace(
        state,
        outputs={"nested": [1, 2.5, None, {"ü": "ñ"}], "empty": {}},
        context={"user_id": None, "input_data": [], "configuration": {"a": {"b": 1e-7}}},
        error="boom",
        forked_from="exec_0",
        fork_sequence=12,
        updated_at=at,
    )
    assert _rows_roundtrip(state) == state


def test_shared_variables_survive_their_rows() -> None:
    var = SharedVariable(
        name="quality_threshold",
        type="float",
        value=0.8,
        immutable=True,
        updated_by="web_search",
        updated_at=datetime(2024, 1, 15, 10, 12, 30, tzinfo=UTC),
        version=3,
    )
    row = rm.as_mapping(rm.SHARED_VARIABLE_COLUMNS, rm.shared_variable_row("ns", var))
    assert rm.shared_variable_from_row(row) == var


# --- batches -------------------------------------------------------------------------


class MemoryReadModel:
    """The tables as dicts, written the way the store upserts them."""

    def __init__(self) -> None:
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.tasks: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        self.checkpoints: dict[tuple[str, int], dict[str, Any]] = {}
        self.dead_letters: list[Any] = []

    def state(self, eid: str) -> ExecutionState:
        """The execution as its rows hold it."""
        tasks = [r for (e, _), r in self.tasks.items() if e == eid]
        listed = [r for r in self.checkpoints.values() if r["execution_id"] == eid]
        return rm.execution_from_rows(self.pipelines[eid], tasks, rm.live_checkpoints(listed))

    def load(self, ids: set[str]) -> dict[str, ExecutionEntry | None]:
        out: dict[str, ExecutionEntry | None] = {}
        for eid in ids:
            row = self.pipelines.get(eid)
            if row is None:
                out[eid] = None
                continue
            out[eid] = ExecutionEntry(
                state=self.state(eid),
                event_count=row["event_count"],
                tp=(TOPIC, 0),
            )
        return out

    def write(self, changes: Any) -> None:
        for row in changes.pipeline_rows():
            m = rm.as_mapping(rm.PIPELINE_COLUMNS, row)
            self.pipelines[m["execution_id"]] = m
        for row in changes.task_rows():
            m = rm.as_mapping(rm.TASK_COLUMNS, row)
            self.tasks[(m["execution_id"], m["task_id"])] = m
        for row in changes.rows()["checkpoints"]:  # the upsert: written once, then withdrawn
            m = rm.as_mapping(rm.CHECKPOINT_COLUMNS, row)
            stored = self.checkpoints.setdefault((m["execution_id"], m["sequence"]), m)
            if m["deleted_at"] is not None:
                stored["deleted_at"] = m["deleted_at"]
        for row in changes.variable_rows():
            m = rm.as_mapping(rm.SHARED_VARIABLE_COLUMNS, row)
            self.variables[(m["namespace"], m["name"])] = m
        self.events.extend(rm.as_mapping(rm.EVENT_COLUMNS, r) for r in changes.events)
        self.dead_letters.extend(changes.dead_letters)


def _records(raw: list[bytes]) -> list[RawRecord]:
    return [
        RawRecord(position=Position(TOPIC, 0, i), key=b"k", value=v, timestamp_ms=0)
        for i, v in enumerate(raw)
    ]


def _decode(records: list[RawRecord]) -> list[DecodedRecord]:
    codec = default_codec()
    out = []
    for r in records:
        try:
            out.append(DecodedRecord(r, codec.decode(r.value), None))
        except DecodeError as exc:
            out.append(DecodedRecord(r, None, exc))
    return out


def _project(records: list[RawRecord], rng: random.Random) -> MemoryReadModel:
    table = MemoryReadModel()
    i = 0
    while i < len(records):
        size = rng.randint(1, 40)
        batch = _decode(records[i : i + size])
        i += size
        executions, variables = touched_keys(batch)
        shared = {
            k: (rm.shared_variable_from_row(table.variables[k]) if k in table.variables else None)
            for k in variables
        }
        table.write(fold_batch(batch, table.load(set(executions)), shared))
    return table


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_batches_fold_to_the_pure_fold_wherever_the_cuts_fall(seed: int) -> None:
    rng = random.Random(seed)
    clean = {
        f"exec_{n}": _uuid_ids(simulate_execution(f"exec_{n}", rng, tasks=rng.randint(1, 5)))
        for n in range(4)
    }
    log = list(
        interleave([flaky_log(h, rng, retries=0.1, zombies=0.1) for h in clean.values()], rng)
    )
    codec = default_codec()
    table = _project(_records([codec.encode(e) for e in log]), rng)

    by_execution: dict[str | None, list[Envelope]] = defaultdict(list)
    for event in log:
        by_execution[event.execution_id].append(event)
    for eid, history in by_execution.items():
        assert eid is not None
        expected = fold(history)
        assert expected is not None
        row = table.pipelines[eid]
        assert table.state(eid) == expected
        assert row["event_count"] == len(history)
        assert row["last_sequence"] == len(clean[eid]) - sum(
            1 for e in clean[eid] if e.sequence is None
        )
    assert len(table.events) == len(log)
    assert [e["offset"] for e in table.events] == list(range(len(log)))
    assert table.dead_letters == []  # duplicates and zombies are dropped, not poison


def test_poison_records_become_dead_letters_and_the_rest_flows() -> None:
    rng = random.Random(3)
    history = _uuid_ids(simulate_execution("exec_p", rng, tasks=3, takeovers=False))
    codec = default_codec()
    raw = [codec.encode(e) for e in history]
    unknown_fingerprint = b"\xc3\x01" + b"\x00" * 8 + raw[1][10:]
    rejected = Envelope(  # a task that was never declared: the fold refuses it
        execution_id="exec_p",
        pipeline_id="research_assistant",
        sequence=4,
        epoch=1,
        payload=c.TaskScheduled(task_id="no_such_task"),
    )
    # The rejected event takes no sequence: the genuine event 4 and the rest still apply.
    shifted = history[3:]
    log = [
        raw[0],
        b"garbage",
        raw[1],
        unknown_fingerprint,
        raw[2],
        codec.encode(rejected),
        *(codec.encode(e) for e in shifted),
    ]
    table = _project(_records(log), random.Random(1))

    reasons = {d.offset: (d.error_class, d.reason) for d in table.dead_letters}
    assert set(reasons) == {1, 3, 5}
    assert reasons[1][0] == "DecodeError"
    assert "unknown schema fingerprint" in reasons[3][1]
    assert reasons[5][0] == "FoldRejected" and "no_such_task" in reasons[5][1]
    assert table.dead_letters[2].execution_id == "exec_p"
    assert table.dead_letters[2].event_type == "TaskScheduled"

    expected = fold([*history[:3], rejected, *shifted])
    assert expected is not None and expected.status == "completed"
    assert table.state("exec_p") == expected
    outcomes = [e["outcome"] for e in table.events]
    assert outcomes.count("rejected") == 1 and len(outcomes) == len(log) - 2


def test_shared_events_fold_like_step_shared() -> None:
    def ev(payload: Any) -> Envelope:
        return Envelope(
            execution_id=None, pipeline_id=None, sequence=None, epoch=0, payload=payload
        )

    events = [
        ev(
            c.SharedVariableSet(
                namespace="ns", name="a", type="int", value=encode_user_data(1), version=1
            )
        ),
        ev(
            c.SharedVariableSet(
                namespace="ns", name="a", type="int", value=encode_user_data(2), version=2
            )
        ),
        ev(
            c.SharedVariableSet(
                namespace="ns", name="a", type="int", value=encode_user_data(2), version=2
            )
        ),
        ev(
            c.SharedVariableSet(
                namespace="ns",
                name="b",
                type="float",
                value=encode_user_data(0.8),
                immutable=True,
                version=1,
            )
        ),
        ev(
            c.SharedVariableSet(
                namespace="ns", name="b", type="float", value=encode_user_data(0.9), version=2
            )
        ),
    ]
    codec = default_codec()
    table = _project(_records([codec.encode(e) for e in events]), random.Random(2))
    state = None
    for e in events:
        state = step_shared(state, e).state
    assert state is not None
    for name, var in state.variables.items():
        assert rm.shared_variable_from_row(table.variables[("ns", name)]) == var
    assert [d.offset for d in table.dead_letters] == [4]  # the write to an immutable variable


def test_values_jsonb_cannot_hold_are_stored_instead_of_wedging_the_processor() -> None:
    text = rm.dumps({"score": float("nan"), "top": [float("inf")], "s": "a\x00b", "t": "\\u0000"})
    assert text is not None
    assert rm.loads(text) == {"score": "NaN", "top": ["Infinity"], "s": "a\ufffdb", "t": "\\u0000"}
    assert rm.dumps(None) is None


def test_the_checkpoint_list_lives_in_checkpoint_rows_withdrawn_when_deleted() -> None:
    """The pipeline row holds no checkpoint list: the live ``checkpoints`` rows are it.
    Deletes withdraw rows saved in an earlier batch, in the same batch, or saved again."""
    w = running_writer("exec_c", 4)
    for i in range(8):
        w.emit(c.CheckpointSaved(checkpoint_id=f"ck{i}", name=f"n{i}", progress=i / 10))
        if i % 3 == 2:
            gone = (f"ck{i - 2}", f"ck{i}", "never_saved")
            w.emit(c.CheckpointsDeleted(checkpoint_ids=gone, reason="prune"))
    w.emit(c.CheckpointSaved(checkpoint_id="ck0", name="again"))  # listed again
    history = _uuid_ids(w.events)
    expected = fold(history)
    assert expected is not None and expected.last_sequence == len(history)
    assert [r.checkpoint_id for r in expected.checkpoints] == ["ck1", "ck4", "ck6", "ck7", "ck0"]
    codec = default_codec()
    records = _records([codec.encode(e) for e in history])
    for seed in range(6):
        table = _project(records, random.Random(seed))
        assert "checkpoints" not in table.pipelines["exec_c"]
        assert {r.checkpoint_id for r in table.state("exec_c").checkpoints} == {
            r.checkpoint_id for r in expected.checkpoints
        }
        assert {r["checkpoint_id"] for r in table.checkpoints.values() if not r["deleted_at"]} == {
            r.checkpoint_id for r in expected.checkpoints
        }
        assert len(table.checkpoints) == 9  # every save keeps its row (ck0 saved twice)


def test_a_checkpoint_saved_again_is_listed_as_its_last_save_wherever_the_cuts_fall() -> None:
    """Withdrawn, then saved again under the same id: the rows list it where and as the
    fold does (last save's name, task, progress, sequence), in any batch split."""
    w = running_writer("exec_r", 5)
    for i in range(6):
        w.emit(c.CheckpointSaved(checkpoint_id=f"ck{i}", name=f"n{i}", progress=i / 10))
    for i in (0, 2):
        w.emit(c.CheckpointsDeleted(checkpoint_ids=(f"ck{i}",), reason="prune"))
        w.emit(c.CheckpointSaved(checkpoint_id=f"ck{i}", name="again", task_id="t"))
    w.emit(c.CheckpointsDeleted(checkpoint_ids=("ck2",), reason="prune"))
    history = _uuid_ids(w.events)
    expected = fold(history)
    assert expected is not None
    assert [r.checkpoint_id for r in expected.checkpoints] == ["ck1", "ck3", "ck4", "ck5", "ck0"]
    records = _records([default_codec().encode(e) for e in history])
    for seed in range(8):
        assert _project(records, random.Random(seed)).state("exec_r") == expected


def test_a_reused_checkpoint_id_is_a_row_of_each_execution_in_one_batch() -> None:
    """Another execution saving and withdrawing an id already saved has its own row
    (rows are keyed by execution and sequence) and leaves the first execution's row
    (and list) alone, in one batch as across batches."""
    a, b = running_writer("exec_a", 6), running_writer("exec_b", 7)
    a.emit(c.CheckpointSaved(checkpoint_id="shared", name="a's"))
    b.emit(c.CheckpointSaved(checkpoint_id="shared", name="b's"))
    b.emit(c.CheckpointsDeleted(checkpoint_ids=("shared",), reason="prune"))
    history = _uuid_ids([*a.events, *b.events])
    table = MemoryReadModel()
    batch = _decode(_records([default_codec().encode(e) for e in history]))
    table.write(fold_batch(batch, {"exec_a": None, "exec_b": None}, {}))
    assert table.state("exec_a") == fold(_uuid_ids(a.events))
    assert table.state("exec_b") == fold(_uuid_ids(b.events))
    shared = [r for r in table.checkpoints.values() if r["checkpoint_id"] == "shared"]
    assert [(r["execution_id"], r["deleted_at"] is None) for r in shared] == [
        ("exec_a", True),
        ("exec_b", False),
    ]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_checkpoint_ids_from_a_small_pool_fold_to_the_rows_wherever_the_cuts_fall(
    seed: int,
) -> None:
    """Two executions save, save again (listed or not) and withdraw ids drawn from one
    small pool, so ids repeat within and across executions: the rows (keyed by execution
    and sequence) must still give each execution's fold, in any batch split."""
    rng = random.Random(seed)
    writers = [running_writer(f"exec_{n}", seed + n) for n in range(2)]
    for _ in range(rng.randint(1, 30)):
        w = rng.choice(writers)
        if rng.random() < 0.7:
            w.emit(c.CheckpointSaved(checkpoint_id=rng.choice("abc"), name=f"n{rng.random()}"))
        else:
            gone = tuple(rng.sample("abcz", rng.randint(1, 2)))
            w.emit(c.CheckpointsDeleted(checkpoint_ids=gone, reason="prune"))
    histories = [_uuid_ids(w.events) for w in writers]
    log = list(interleave(histories, rng))
    table = _project(_records([default_codec().encode(e) for e in log]), rng)
    for history in histories:
        assert table.state(history[0].execution_id or "") == fold(history)
