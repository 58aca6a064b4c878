"""Errors declared with ``error_fields`` behave as the hand-written ones did: the same
message text, ``args``, attributes and keyword arguments; and they pickle."""

from __future__ import annotations

import pickle
from dataclasses import KW_ONLY
from pathlib import Path

import pytest

from orchestrator import backup, commands, devstack, events, projections, runtime, snapshots
from orchestrator.events import DecodeError, InvalidEvent, KafkaUnreachable, error_fields


@error_fields("{name} failed{_when}: {reason}")
class _Example(events.OrchestratorStateError):
    name: str
    reason: str
    _: KW_ONLY
    attempt: int | None = None
    retriable: bool = False

    def __post_init__(self) -> None:
        self.name = self.name.strip()

    @property
    def _when(self) -> str:
        return "" if self.attempt is None else f" on attempt {self.attempt}"


def test_fields_are_arguments_and_attributes_and_the_template_is_the_message() -> None:
    error = _Example(" upload ", "disk full", attempt=3, retriable=True)
    assert (error.name, error.reason, error.attempt, error.retriable) == (
        "upload",
        "disk full",
        3,
        True,
    )
    assert str(error) == "upload failed on attempt 3: disk full"
    assert error.args == ("upload failed on attempt 3: disk full",)
    assert repr(error) == "_Example('upload failed on attempt 3: disk full')"
    assert _Example("x", "y").retriable is False
    assert str(_Example("x", "y")) == "x failed: y"


def test_keyword_only_fields_and_missing_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        _Example("x", "y", 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        _Example("x")  # type: ignore[call-arg]


def test_errors_compare_by_identity_as_exceptions_do() -> None:
    first, second = _Example("x", "y"), _Example("x", "y")
    assert first != second
    assert len({first, second}) == 2


@pytest.mark.parametrize(
    "error",
    [
        _Example("x", "y", attempt=2),
        InvalidEvent("TaskStarted", "task_id", "missing"),
        DecodeError("bad magic", topic="t", partition=1, offset=7),
        KafkaUnreachable("127.0.0.1:9092", "timed out"),
        events.LogError("broker gone", retriable=True),
    ],
    ids=type,
)
def test_errors_pickle_with_their_message_and_fields(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.args == error.args
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_the_event_layers_messages_are_unchanged() -> None:
    assert str(InvalidEvent("TaskStarted", "task_id", "missing")) == (
        "invalid TaskStarted: field 'task_id': missing"
    )
    assert str(DecodeError("bad magic")) == "cannot decode event: bad magic"
    assert str(DecodeError("bad").at("t", 1, 7)) == "cannot decode event at t[1]@7: bad"
    unreachable = KafkaUnreachable("h:9092", "timed out")
    assert isinstance(unreachable, events.LogError)
    assert isinstance(unreachable, events.ServerUnreachable)
    assert (unreachable.server, unreachable.address, unreachable.retriable) == (
        "Kafka",
        "h:9092",
        True,
    )
    assert str(unreachable) == "cannot reach Kafka at h:9092: timed out"
    assert str(events.InvalidTransition("p1", None, "start")) == "p1: cannot start from status None"


def _messages() -> list[tuple[Exception, str]]:
    """Errors whose message has a computed part, with the text they said before."""
    return [
        (commands.LeaseLost("n", "h", 3), "lease 'n' lost by 'h' (epoch 3): no longer held"),
        (
            commands.LeaseLost("n", "h", 3, current_holder="x", current_epoch=4),
            "lease 'n' lost by 'h' (epoch 3): now held by 'x' at epoch 4",
        ),
        (commands.LockTimeout("n", "h", 10), "'h' could not acquire lock 'n' within 10s"),
        (commands.ExecutionNotOwned("e"), "execution e is not owned"),
        (commands.ExecutionNotOwned("e", "h", 3), "execution e is not owned by 'h' at epoch 3"),
        (commands.ExecutionNotOwned("e", epoch=3), "execution e is not owned at epoch 3"),
        (
            commands.CoordinationUnavailable("etcd", ["a", "b"], "down"),
            "etcd unreachable at a, b (down): is the cluster up and the address right "
            "(distributed.coordination.endpoints)?",
        ),
        (
            commands.ReadModelTimeout(events.Position("t", 1, 5), 1.5, applied=3),
            "read model did not reach t:1:5 within 1.5s (applied up to offset 3): "
            "is the projection processor running?",
        ),
        (
            commands.VariableTypeMismatch("ns", "v", "int", "str"),
            "shared variable ns/v is of type 'int', cannot hold a 'str'",
        ),
        (events.Fenced([("b", 2), ("a", 1)]), "a[1], b[2] moved by another member"),
        (
            events.TopicMismatch("t", "partitions", 3, 1, fix="do it"),
            "topic 't': partitions is 1, expected 3; fix: do it",
        ),
        (
            projections.ProcessorFailed(
                "p", "r", topic="t", partition=0, offset=9, execution_id="e"
            ),
            "projection p failed at t[0]@9 (execution e): r",
        ),
        (snapshots.SnapshotterFailed("r", retriable=False), "snapshotter failed: r"),
        (
            snapshots.SnapshotStoreError("s3", "put", "k", "r", retriable=True),
            "s3 store: put 'k' failed: r",
        ),
        (
            runtime.PipelineFailed("e", "p", None, "boom", retryable=False),
            "execution e of p failed in validation: boom",
        ),
        (
            backup.TargetNotEmpty(["a", "b"]),
            "restore-backup needs an empty deployment, but a; b: point it at a new database, "
            "topics and snapshot store, or drop these first",
        ),
        (
            devstack.ServiceStartError("kafka", "died", Path("/l"), "tail {x}"),
            "kafka failed to start: died\n--- last lines of the kafka log (/l) ---\ntail {x}",
        ),
    ]


@pytest.mark.parametrize("error_and_text", _messages(), ids=lambda case: type(case[0]).__name__)
def test_messages_with_computed_parts_are_unchanged(error_and_text: tuple[Exception, str]) -> None:
    error, text = error_and_text
    assert str(error) == text
    assert error.args == (text,)


def test_a_required_retriable_stays_required() -> None:
    with pytest.raises(TypeError):
        snapshots.SnapshotterFailed("r")  # type: ignore[call-arg]
    assert snapshots.SnapshotterFailed("r", retriable=True).retriable is True
