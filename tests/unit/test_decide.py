"""``decide``: commands checked against state, with the fold's own rules."""

from __future__ import annotations

import random

import pytest

from orchestrator.commands.decide import (
    Cancel,
    Complete,
    CompleteTask,
    CreateExecution,
    DeleteCheckpoints,
    FailTask,
    InvalidCommand,
    Pause,
    RestoreCheckpoint,
    Resume,
    SaveCheckpoint,
    ScheduleRetry,
    ScheduleTask,
    StartTask,
    StartValidation,
    SucceedValidation,
    decide,
    encode_fields,
    evolve,
)
from orchestrator.commands.errors import ImmutableVariable, StaleExpectedVersion
from orchestrator.commands.shared import (
    DeleteVariable,
    SetVariable,
    VariableNotFound,
    VariableTypeMismatch,
    decide_shared,
)
from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import InvalidTransition, UserDataError
from orchestrator.events.fold import step_shared
from orchestrator.events.state import ExecutionState, NamespaceState
from orchestrator.events.userdata import UserData, decode_user_data, encode_user_data


def running(*tasks: str) -> ExecutionState:
    state = evolve(
        None,
        [
            CreateExecution(
                execution_id="exec_12345", pipeline_id="research_assistant", tasks=tasks
            ),
            StartValidation(),
            SucceedValidation(),
        ],
    )
    assert state is not None
    return state


def test_create_produces_execution_created_with_tasks() -> None:
    [payload] = decide(
        None,
        CreateExecution(
            execution_id="exec_1",
            pipeline_id="p",
            tasks=("init", c.TaskSpec(task_id="search", depends_on=("init",))),
            input_data={"query": "quantum"},
        ),
    )
    assert isinstance(payload, c.ExecutionCreated)
    assert [t.task_id for t in payload.tasks] == ["init", "search"]
    assert payload.tasks[1].depends_on == ("init",)
    assert payload.context.input_data is not None
    assert decode_user_data(payload.context.input_data) == {"query": "quantum"}


def test_invalid_transition_names_execution_status_and_command() -> None:
    state = evolve(None, [CreateExecution(execution_id="exec_9", pipeline_id="p")])
    with pytest.raises(InvalidTransition) as info:
        decide(state, Pause(reason="operator"))
    err = info.value
    assert isinstance(err, InvalidCommand)
    assert err.execution_id == "exec_9"
    assert err.from_status == "initialized"
    assert err.command == "Pause"
    assert "exec_9" in str(err) and "Pause" in str(err) and "initialized" in str(err)


def test_command_on_unknown_execution_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="does not exist"):
        decide(None, Cancel())


def test_create_twice_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="already exists"):
        decide(running(), CreateExecution(execution_id="exec_12345", pipeline_id="p"))


def test_task_error_names_the_task_status() -> None:
    state = running("init")
    with pytest.raises(InvalidCommand) as info:
        decide(state, CompleteTask(task_id="init", outputs={"x": 1}))
    assert info.value.subject == "task init of execution exec_12345"
    assert info.value.from_status == "pending"


def test_unknown_task_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="unknown task"):
        decide(running("init"), ScheduleTask(task_id="nope"))


def test_attempts_default_to_the_next_and_current_attempt() -> None:
    state = evolve(running("init"), [StartTask(task_id="init")])
    assert state is not None and state.tasks["init"].attempts == 1
    [failed] = decide(state, FailTask(task_id="init", error="rate limited"))
    assert isinstance(failed, c.TaskFailed) and failed.attempt == 1
    state = evolve(state, [FailTask(task_id="init", error="rate limited")])
    [retry] = decide(state, ScheduleRetry(task_id="init", delay_seconds=2.0))
    assert isinstance(retry, c.TaskRetryScheduled) and retry.attempt == 2
    state = evolve(state, [ScheduleRetry(task_id="init"), StartTask(task_id="init")])
    assert state is not None and state.tasks["init"].attempts == 2


def test_checkpoints_must_exist_to_be_restored_or_resumed_from() -> None:
    state = running("init")
    with pytest.raises(InvalidCommand, match="unknown checkpoint"):
        decide(state, RestoreCheckpoint(checkpoint_id="ckpt_x"))
    state = evolve(state, [SaveCheckpoint(name="after_init", checkpoint_id="ckpt_1")])
    assert decide(state, RestoreCheckpoint(checkpoint_id="ckpt_1"))
    paused = evolve(state, [Pause()])
    with pytest.raises(InvalidCommand, match="unknown checkpoint"):
        decide(paused, Resume(from_checkpoint="ckpt_2"))
    [resumed] = decide(paused, Resume(from_checkpoint="ckpt_1"))
    assert isinstance(resumed, c.ExecutionResumed)


def test_a_save_under_an_id_still_listed_is_refused_naming_the_id() -> None:
    """``checkpoint.restore`` takes only an id, so an id names one checkpoint of the list:
    saving it again while listed is refused (nothing written); once withdrawn it may be
    saved again, and is then listed once, as its last save."""
    state = evolve(running("init"), [SaveCheckpoint(name="one", checkpoint_id="ckpt_1")])
    with pytest.raises(InvalidCommand, match="'ckpt_1' is already listed") as info:
        decide(state, SaveCheckpoint(name="two", checkpoint_id="ckpt_1"))
    assert info.value.command == "SaveCheckpoint"
    state = evolve(
        state,
        [
            DeleteCheckpoints(checkpoint_ids=["ckpt_1"]),
            SaveCheckpoint(name="two", checkpoint_id="ckpt_1"),
        ],
    )
    assert state is not None
    assert [(r.checkpoint_id, r.name) for r in state.checkpoints] == [("ckpt_1", "two")]


def test_long_lists_refuse_listed_ids_after_saves_deletes_and_from_older_states() -> None:
    """Past 64 checkpoints the listed ids are held and extended save by save
    (``commands._listed``): every path a list changes by still answers as a scan would."""

    def saves(ids: range) -> list[SaveCheckpoint]:
        return [SaveCheckpoint(name=f"s{i}", checkpoint_id=f"ckpt_{i}") for i in ids]

    def refused(state: ExecutionState, cid: str) -> bool:
        try:
            decide(state, SaveCheckpoint(name="again", checkpoint_id=cid))
        except InvalidCommand as exc:
            assert "is already listed" in str(exc)
            return True
        return False

    older = evolve(running("init"), saves(range(100)))
    assert older is not None
    assert refused(older, "ckpt_0") and refused(older, "ckpt_99")
    state = evolve(older, saves(range(100, 103)))  # extended with what was appended
    assert state is not None
    assert refused(state, "ckpt_101") and refused(state, "ckpt_5")
    assert not refused(older, "ckpt_101")  # an older, shorter list: built again
    assert not refused(state, "ckpt_103")
    deleted = evolve(state, [DeleteCheckpoints(checkpoint_ids=["ckpt_5", "ckpt_102"])])
    assert deleted is not None
    assert not refused(deleted, "ckpt_5") and not refused(deleted, "ckpt_102")
    assert refused(deleted, "ckpt_6")
    again = evolve(deleted, saves(range(5, 6)))  # a deleted id saved again: listed again
    assert again is not None
    assert refused(again, "ckpt_5") and not refused(again, "ckpt_102")
    rebuilt = evolve(running("init"), saves(range(103)))  # the same ids, other objects
    assert rebuilt is not None
    assert refused(rebuilt, "ckpt_102") and not refused(rebuilt, "ckpt_103")


def test_evolve_is_all_or_nothing_and_names_the_failing_command() -> None:
    state = running("init")
    with pytest.raises(InvalidCommand) as info:
        evolve(state, [StartTask(task_id="init"), Complete(), StartTask(task_id="init")])
    # Complete is fine from running; the third command fails on the completed execution.
    assert info.value.command == "StartTask"
    assert info.value.from_status == "completed"


def test_plain_user_data_is_encoded_and_encoded_data_kept() -> None:
    encoded = encode_user_data({"a": 1})
    cmd = CompleteTask(task_id="t", outputs={"b": 2}, metadata=encoded)
    out = encode_fields(cmd, lambda v: encode_user_data(v, compress_threshold=0))
    assert isinstance(out, CompleteTask)
    assert isinstance(out.outputs, UserData) and out.outputs.encoding == "json_zstd"
    assert out.metadata is encoded


def test_large_plain_value_without_blob_store_is_a_clear_error() -> None:
    state = evolve(running("t"), [StartTask(task_id="t")])
    big = {"x": random.Random(0).randbytes(400_000).hex()}  # ~400 KB even compressed
    with pytest.raises(UserDataError, match="claim-check"):
        decide(state, CompleteTask(task_id="t", outputs=big))


# --- shared variables ----------------------------------------------------------------


def _namespace(*commands: SetVariable | DeleteVariable) -> NamespaceState | None:
    state: NamespaceState | None = None
    for command in commands:
        [payload] = decide_shared(state, command)
        envelope = Envelope(
            execution_id=None, pipeline_id=None, sequence=None, epoch=1, payload=payload
        )
        state = step_shared(state, envelope).state
    return state


def _set(name: str, value: object, **kw: object) -> SetVariable:
    return SetVariable(namespace="research_pipeline", name=name, value=value, **kw)  # type: ignore[arg-type]


def test_immutable_variable_refuses_set_and_delete() -> None:
    state = _namespace(_set("quality_threshold", 0.8, type="float", immutable=True))
    with pytest.raises(ImmutableVariable, match="research_pipeline/quality_threshold"):
        decide_shared(state, _set("quality_threshold", 0.9))
    with pytest.raises(ImmutableVariable):
        decide_shared(
            state, DeleteVariable(namespace="research_pipeline", name="quality_threshold")
        )


def test_expected_version_is_compare_and_set() -> None:
    state = _namespace(_set("results", [1]), _set("results", [1, 2]))
    with pytest.raises(StaleExpectedVersion) as info:
        decide_shared(state, _set("results", [3], expected_version=1))
    assert (info.value.expected, info.value.actual) == (1, 2)
    [payload] = decide_shared(state, _set("results", [3], expected_version=2))
    assert isinstance(payload, c.SharedVariableSet) and payload.version == 3
    with pytest.raises(StaleExpectedVersion):  # 0: create only
        decide_shared(state, _set("results", [], expected_version=0))
    assert decide_shared(state, _set("fresh", "x", expected_version=0))


def test_variables_are_typed() -> None:
    state = _namespace(_set("threshold", 1, type="float"))
    with pytest.raises(VariableTypeMismatch, match="type 'float', cannot hold a 'str'"):
        decide_shared(state, _set("threshold", "high"))
    with pytest.raises(VariableTypeMismatch):
        decide_shared(state, _set("threshold", 0.5, type="str"))
    with pytest.raises(VariableTypeMismatch):
        decide_shared(None, _set("flag", True, type="int"))
    [payload] = decide_shared(None, _set("search_results", ["a"]))
    assert isinstance(payload, c.SharedVariableSet) and payload.type == "list"


def test_delete_then_set_continues_the_version() -> None:
    delete = DeleteVariable(namespace="research_pipeline", name="v")
    with pytest.raises(VariableNotFound):
        decide_shared(None, delete)
    state = _namespace(_set("v", 1), delete)
    with pytest.raises(VariableNotFound):
        decide_shared(state, delete)
    [payload] = decide_shared(state, _set("v", "now a string", expected_version=2))
    assert isinstance(payload, c.SharedVariableSet) and payload.version == 3
