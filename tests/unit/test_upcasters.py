"""Upcasters across a schema change: events written under an old release read as the
current one, and the fold equals the fold of the same history written natively now."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer

from orchestrator.events import register_upcaster, upcaster, user_state_upcaster
from orchestrator.events.catalogue import (
    ExecutionCreated,
    ExecutionDetails,
    ExecutionValidationStarted,
    ExecutionValidationSucceeded,
    TaskCompleted,
    TaskScheduled,
    TaskSpec,
    TaskStarted,
)
from orchestrator.events.codec import EventCodec
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import DecodeError
from orchestrator.events.fold import fold
from orchestrator.events.schemas import SchemaRegistry, default_registry, schemas_root
from orchestrator.events.upcast import UpcasterRegistry, default_upcasters, parse_version
from orchestrator.events.userdata import decode_user_data, encode_user_data
from tests.avro_records import avro_value

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _history() -> list[Envelope]:
    """One execution as the current code writes it: a task that completes with outputs."""
    payloads: list[Any] = [
        ExecutionCreated(pipeline_id="p", tasks=(TaskSpec(task_id="fetch"),)),
        ExecutionValidationStarted(),
        ExecutionValidationSucceeded(),
        TaskScheduled(task_id="fetch"),
        TaskStarted(task_id="fetch", attempt=1, node_id="n1"),
        TaskCompleted(
            task_id="fetch",
            outputs=encode_user_data({"pages": 3}),
            details=ExecutionDetails(duration=1.5, model_calls=2),
        ),
    ]
    return [
        Envelope(
            execution_id="exec-up",
            pipeline_id="p",
            sequence=n,
            epoch=1,
            payload=payload,
            producer="n1",
            event_id=str(uuid.UUID(int=n)),
            occurred_at=T0 + timedelta(seconds=n),
        )
        for n, payload in enumerate(payloads, start=1)
    ]


def _old_release_root(tmp_path: Path) -> Path:
    """The repository's schemas, but release v1 wrote ``TaskCompleted.result`` (not
    ``outputs``) and ``ExecutionDetails.duration_ms`` (milliseconds, not seconds)."""
    root = tmp_path / "schemas"
    shutil.copytree(schemas_root(), root)
    v1 = root / "releases" / "v1"
    completed = json.loads((v1 / "TaskCompleted.avsc").read_text())
    for field in completed["fields"]:
        if field["name"] == "outputs":
            field["name"] = "result"
        if field["name"] == "details":
            field["default"] = {"duration_ms": None, "memory_used": None,
                                "model_calls": None, "tokens_used": None}  # fmt: skip
    (v1 / "TaskCompleted.avsc").write_text(json.dumps(completed))
    details = json.loads((v1 / "ExecutionDetails.avsc").read_text())
    details["fields"][0] = {"name": "duration_ms", "type": ["null", "long"], "default": None}
    (v1 / "ExecutionDetails.avsc").write_text(json.dumps(details))
    return root


def _v1_bytes(registry: SchemaRegistry, envelope: Envelope) -> bytes:
    """How the old code wrote the event under the old v1 schema."""
    v1 = registry.release("v1")
    record = avro_value(envelope)
    payload = record["payload"]
    if envelope.event_type == "TaskCompleted":
        payload["result"] = payload.pop("outputs")
        details = payload["details"]
        details["duration_ms"] = round(details.pop("duration") * 1000)
    record["payload"] = (f"orchestrator.events.{envelope.event_type}", payload)
    record["event_type"] = envelope.event_type
    out = BytesIO()
    schemaless_writer(out, v1.schema, record)
    return v1.header + out.getvalue()


def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    payload["outputs"] = payload.pop("result", None)
    details = dict(payload.get("details") or {})
    ms = details.pop("duration_ms", None)
    details["duration"] = None if ms is None else ms / 1000
    payload["details"] = details
    return payload


def test_old_events_read_through_the_upcaster_fold_as_native_ones(tmp_path: Path) -> None:
    registry = SchemaRegistry.load(_old_release_root(tmp_path))
    upcasters = UpcasterRegistry()
    upcasters.register("TaskCompleted", "v1", _v1_to_v2)
    codec = EventCodec(registry, upcasters=upcasters)
    history = _history()
    native = [codec.decode(codec.encode(e)) for e in history]
    old = [codec.decode(_v1_bytes(registry, e)) for e in history]

    assert old == native  # event ids, sequences, payloads: the same events
    assert fold(old) == fold(native)
    completed = old[-1].payload
    assert isinstance(completed, TaskCompleted) and completed.outputs is not None
    assert decode_user_data(completed.outputs) == {"pages": 3}
    assert completed.details.duration == 1.5


def test_without_the_upcaster_avro_resolution_alone_loses_the_renamed_field(
    tmp_path: Path,
) -> None:
    registry = SchemaRegistry.load(_old_release_root(tmp_path))
    codec = EventCodec(registry, upcasters=UpcasterRegistry())
    old = codec.decode(_v1_bytes(registry, _history()[-1]))
    assert isinstance(old.payload, TaskCompleted)
    assert old.payload.outputs is None and old.payload.details.duration is None


def test_a_failing_upcaster_makes_the_event_undecodable_naming_it(tmp_path: Path) -> None:
    registry = SchemaRegistry.load(_old_release_root(tmp_path))
    upcasters = UpcasterRegistry()
    upcasters.register("TaskCompleted", 1, lambda payload: {"nonsense": True})
    codec = EventCodec(registry, upcasters=upcasters)
    with pytest.raises(DecodeError, match="upcaster of TaskCompleted from v1 failed"):
        codec.decode(_v1_bytes(registry, _history()[-1]))
    # other event types of the same old release still decode
    assert codec.decode(_v1_bytes(registry, _history()[0])).sequence == 1


def test_the_process_registry_reaches_the_default_decode_path() -> None:
    """Events written under the repository's release v1 go through an upcaster registered
    with ``@upcaster``; events written with the current schema are untouched."""
    registry = default_registry()
    v1_writer = EventCodec(registry, writer=registry.release("v1"), upcasters=UpcasterRegistry())
    event = _history()[-1]

    @upcaster("TaskCompleted", from_version=1)
    def tokens_were_thousands(payload: dict[str, Any]) -> dict[str, Any]:
        payload["details"]["tokens_used"] = 1000 * (payload["details"]["tokens_used"] or 0)
        return payload

    try:
        with_tokens = Envelope(
            **{f.name: getattr(event, f.name) for f in fields(event) if f.name != "payload"},
            payload=TaskCompleted(task_id="fetch", details=ExecutionDetails(tokens_used=3)),
        )
        reader = EventCodec(registry)  # the default: the process's registry
        old = reader.decode(v1_writer.encode(with_tokens))
        assert isinstance(old.payload, TaskCompleted)
        assert old.payload.details.tokens_used == 3000
        assert reader.decode(reader.encode(with_tokens)) == with_tokens
    finally:
        default_upcasters().unregister("TaskCompleted", 1)


def test_registration_rules() -> None:
    upcasters = UpcasterRegistry()
    upcasters.register("TaskCompleted", 1, _v1_to_v2)
    upcasters.register("TaskCompleted", 1, _v1_to_v2)  # the same function again: fine
    with pytest.raises(ValueError, match="already registered"):
        upcasters.register("TaskCompleted", "v1", lambda p: p)
    assert parse_version("v2") == 2 and parse_version(3) == 3
    for bad in ("v0", "x", 0, "-1"):
        with pytest.raises(ValueError):
            parse_version(bad)
    assert upcasters.registered() == [("TaskCompleted", 1)]
    assert register_upcaster is not None


def _checkpoint(data: Any, n: int = 6) -> Envelope:
    from orchestrator.events.catalogue import CheckpointSaved

    first = _history()[0]
    return Envelope(
        **{f.name: getattr(first, f.name) for f in fields(first) if f.name != "payload"}
        | {"sequence": n, "event_id": str(uuid.UUID(int=100 + n))},
        payload=CheckpointSaved(
            checkpoint_id="cp-1", name="after_part_1", task_id="fetch", data=data, progress=0.33
        ),
    )


@pytest.mark.parametrize("size", [10, 5000], ids=["inline_json", "inline_zstd"])
def test_user_state_upcaster_reshapes_old_checkpoint_data(size: int) -> None:
    """The application's checkpoint data changed shape at release v2; checkpoints saved
    before read in the new shape, and the fold holds what a new save would."""
    registry = default_registry()
    upcasters = UpcasterRegistry()
    user_state_upcaster(
        "CheckpointSaved",
        1,
        "data",
        lambda old: {"results": {"part_1": old["result_1"]}, "progress": old["progress"]},
        registry=upcasters,
    )
    old_writer = EventCodec(registry, writer=registry.release("v1"), upcasters=UpcasterRegistry())
    reader = EventCodec(registry, upcasters=upcasters)
    history = _history()[:4]
    old_data = encode_user_data({"result_1": "x" * size, "progress": 0.33})
    new_data = encode_user_data({"results": {"part_1": "x" * size}, "progress": 0.33})
    old = [reader.decode(old_writer.encode(e)) for e in [*history, _checkpoint(old_data, 5)]]
    native = [reader.decode(reader.encode(e)) for e in [*history, _checkpoint(new_data, 5)]]
    assert old[-1].payload.data.encoding == new_data.encoding  # type: ignore[union-attr]
    assert fold(old) == fold(native)
    assert old == native  # what the read model's checkpoints table stores comes from here
    saved = old[-1].payload.data  # type: ignore[union-attr]
    assert decode_user_data(saved) == {"results": {"part_1": "x" * size}, "progress": 0.33}


def test_a_claim_checked_value_cannot_be_reshaped_on_read() -> None:
    from orchestrator.events.userdata import BlobRef, UserData

    registry = default_registry()
    upcasters = UpcasterRegistry()
    user_state_upcaster("CheckpointSaved", 1, "data", lambda old: old, registry=upcasters)
    old_writer = EventCodec(registry, writer=registry.release("v1"), upcasters=UpcasterRegistry())
    ref = UserData(encoding="json", ref=BlobRef(uri="s3://b/blobs/aa/aa", sha256="aa", size=3))
    with pytest.raises(DecodeError, match=r"CheckpointSaved\.data: a claim-checked"):
        EventCodec(registry, upcasters=upcasters).decode(old_writer.encode(_checkpoint(ref)))
