"""A new event type is three places (schema, catalogue class, fold case); the catalogue
check refuses an entry that misses one, and the Envelope's union follows the catalogue."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.events.catalogue import (
    CATALOGUE,
    CONTROL_EVENT_TYPES,
    PAYLOAD_TYPES,
    SHARED_EVENT_TYPES,
    EventSpec,
    Payload,
    event,
)
from orchestrator.events.codec import default_codec
from orchestrator.events.fold import folded_types
from orchestrator.events.registry import CatalogueError, check_catalogue
from orchestrator.events.schemas import (
    CURRENT,
    ENVELOPE,
    load_schema_set,
    payload_names,
    schemas_root,
    sync_envelope,
)
from tests.strategies import derived, envelopes


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskNoted(Payload):
    """A payload a test adds to a scratch catalogue (never registered for real)."""

    event_type: ClassVar[str] = "TaskNoted"
    task_id: str


NOTED_SCHEMA = {
    "type": "record",
    "name": "TaskNoted",
    "namespace": "orchestrator.events",
    "doc": "A test event.",
    "fields": [{"name": "task_id", "type": "string", "doc": "The task."}],
}


def _with_noted(action: str | None = None) -> dict[str, EventSpec]:
    return {**CATALOGUE, "TaskNoted": EventSpec(TaskNoted, "task", action)}


def _schemas_with_noted(tmp_path: Path) -> Path:
    """A copy of ``schemas/`` whose current set has TaskNoted, appended to the union."""
    root = tmp_path / "schemas"
    shutil.copytree(schemas_root() / CURRENT, root / CURRENT)
    (root / CURRENT / "TaskNoted.avsc").write_text(json.dumps(NOTED_SCHEMA))
    envelope = root / CURRENT / f"{ENVELOPE}.avsc"
    text = envelope.read_text()
    envelope.write_text(text.replace('"CheckpointsDeleted"]', '"CheckpointsDeleted", "TaskNoted"]'))
    return root


def test_the_catalogue_is_complete() -> None:
    check_catalogue()


def test_kinds_are_derived_from_the_registrations() -> None:
    assert SHARED_EVENT_TYPES == {"SharedVariableSet", "SharedVariableDeleted"}
    assert CONTROL_EVENT_TYPES == {"ExecutionOwnershipTaken"}
    assert list(CATALOGUE) == payload_names(load_schema_set(schemas_root() / CURRENT))


def test_an_entry_without_a_schema_is_refused() -> None:
    with pytest.raises(CatalogueError, match=r"TaskNoted: no schema: add .*TaskNoted\.avsc"):
        check_catalogue(_with_noted(), folded=folded_types() | {TaskNoted})


def test_an_entry_without_a_fold_case_is_refused(tmp_path: Path) -> None:
    schema_set = load_schema_set(_schemas_with_noted(tmp_path) / CURRENT)
    with pytest.raises(CatalogueError, match="TaskNoted: no fold case"):
        check_catalogue(_with_noted(), schema_set)


def test_a_task_action_is_its_fold_case_when_the_machine_has_it(tmp_path: Path) -> None:
    schema_set = load_schema_set(_schemas_with_noted(tmp_path) / CURRENT)
    # The fold's machine-driven task case serves any task event with an action; the
    # check asks only that the action is a transition of the task machine.
    check_catalogue(_with_noted("start"), schema_set, folded_types() | {TaskNoted})
    with pytest.raises(CatalogueError, match="'note' is not a transition of the task"):
        check_catalogue(_with_noted("note"), schema_set, folded_types() | {TaskNoted})


def test_an_entry_missing_from_the_envelope_union_is_refused(tmp_path: Path) -> None:
    root = _schemas_with_noted(tmp_path)
    envelope = root / CURRENT / f"{ENVELOPE}.avsc"
    envelope.write_text(envelope.read_text().replace(', "TaskNoted"]', "]"))
    schema_set = load_schema_set(root / CURRENT)
    with pytest.raises(CatalogueError, match=r"TaskNoted: the Envelope's payload union .* sync"):
        check_catalogue(_with_noted(), schema_set, folded_types() | {TaskNoted})


def test_sync_appends_the_catalogue_to_the_envelope_union(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(schemas_root() / CURRENT, root / CURRENT)
    envelope = root / CURRENT / f"{ENVELOPE}.avsc"
    envelope.write_text(envelope.read_text().replace(', "CheckpointsDeleted"]', "]"))
    assert sync_envelope(root) == ["CheckpointsDeleted"]
    assert payload_names(load_schema_set(root / CURRENT)) == list(CATALOGUE)
    assert sync_envelope(root) == []


def test_registration_refuses_a_second_entry_or_a_misnamed_class() -> None:
    with pytest.raises(TypeError, match="registered twice"):
        event("task", action="start")(CATALOGUE["TaskStarted"].cls)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Misnamed(Payload):
        event_type: ClassVar[str] = "SomethingElse"

    with pytest.raises(TypeError, match="must be the class name"):
        event("checkpoint")(Misnamed)


DERIVABLE = sorted(n for n in PAYLOAD_TYPES if n not in ("ExecutionCreated", "TaskCompleted"))


@pytest.mark.parametrize("event_type", DERIVABLE)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_strategy_derived_from_the_class_round_trips(
    event_type: str, data: st.DataObject
) -> None:
    # So a new event type needs no hand-written strategy in tests/strategies.py.
    envelope = data.draw(envelopes(derived(PAYLOAD_TYPES[event_type])))
    codec = default_codec()
    assert codec.decode(codec.encode(envelope)) == envelope
