"""The event codec: round trips, the single-object header, field-naming errors, bad bytes."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.events.catalogue import (
    PAYLOAD_TYPES,
    ExecutionCreated,
    ExecutionDetails,
    ExecutionValidationStarted,
    TaskCompleted,
    TaskSpec,
    TaskStarted,
)
from orchestrator.events.codec import HEADER_SIZE, EventCodec, default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import DecodeError, InvalidEvent
from orchestrator.events.schemas import default_registry
from orchestrator.events.userdata import UserData
from tests.avro_records import avro_value
from tests.strategies import PAYLOADS, envelopes

EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _envelope(payload: Any = None, **changes: Any) -> Envelope:
    payload = payload or TaskStarted(task_id="summarise", attempt=1, node_id="node-a")
    fixed = {
        "execution_id": "exec-1",
        "pipeline_id": "pipe-1",
        "sequence": 3,
        "epoch": 2,
        "payload": payload,
        "producer": "node-a",
        "event_id": str(uuid.UUID(int=7)),
        "occurred_at": datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    }
    return Envelope(**(fixed | changes))


def _avro_record(envelope: Envelope) -> dict[str, Any]:
    """The envelope as fastavro's dict, the payload branch named in tuple notation."""
    record: dict[str, Any] = avro_value(envelope)
    record["event_type"] = envelope.event_type
    record["payload"] = (f"orchestrator.events.{envelope.event_type}", record["payload"])
    return record


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(PAYLOAD_TYPES))
@EXAMPLES
@given(data=st.data())
def test_every_payload_type_round_trips(event_type: str, data: st.DataObject) -> None:
    envelope = data.draw(envelopes(PAYLOADS[event_type]))
    codec = default_codec()
    decoded = codec.decode(codec.encode(envelope))
    assert decoded == envelope
    assert type(decoded.payload) is PAYLOAD_TYPES[event_type]
    assert decoded.occurred_at.tzinfo is UTC


@pytest.mark.parametrize("event_type", sorted(PAYLOAD_TYPES))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bytes_are_what_fastavro_writes_and_reads(event_type: str, data: st.DataObject) -> None:
    envelope = data.draw(envelopes(PAYLOADS[event_type]))
    codec = default_codec()
    message = codec.encode(envelope)
    schema = codec.writer.schema
    reference = BytesIO()
    schemaless_writer(reference, schema, _avro_record(envelope))
    assert message[HEADER_SIZE:] == reference.getvalue()
    body = BytesIO(message[HEADER_SIZE:])
    read = schemaless_reader(body, schema, None, return_record_name=True)
    assert read["event_type"] == envelope.event_type
    assert read["payload"][0] == f"orchestrator.events.{event_type}"
    assert str(read["event_id"]) == envelope.event_id
    assert read["occurred_at"] == envelope.occurred_at


@pytest.mark.parametrize("value", [0, -1, 63, 64, -64, -65, 2**31, -(2**63), 2**63 - 1])
def test_long_boundaries_round_trip(value: int) -> None:
    envelope = _envelope(sequence=value, epoch=value)
    assert default_codec().decode(default_codec().encode(envelope)) == envelope


def test_empty_payload_and_defaults_round_trip() -> None:
    codec = default_codec()
    for envelope in (
        _envelope(ExecutionValidationStarted()),
        _envelope(ExecutionCreated(pipeline_id="p"), sequence=None, execution_id=None),
    ):
        assert codec.decode(codec.encode(envelope)) == envelope


def test_tuples_stay_tuples() -> None:
    payload = ExecutionCreated(
        pipeline_id="p", tasks=(TaskSpec(task_id="a"), TaskSpec(task_id="b", depends_on=("a",)))
    )
    decoded = default_codec().decode(default_codec().encode(_envelope(payload)))
    assert isinstance(decoded.payload, ExecutionCreated)
    assert decoded.payload.tasks == payload.tasks
    assert isinstance(decoded.payload.tasks, tuple)
    assert isinstance(decoded.payload.tasks[1].depends_on, tuple)


def test_lists_are_accepted_for_tuple_fields() -> None:
    payload = ExecutionCreated(pipeline_id="p", tasks=[TaskSpec(task_id="a")])  # type: ignore[arg-type]
    decoded = default_codec().decode(default_codec().encode(_envelope(payload)))
    assert isinstance(decoded.payload, ExecutionCreated)
    assert decoded.payload.tasks == (TaskSpec(task_id="a"),)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    envelope = _envelope()
    data = default_codec().encode(envelope)
    assert default_codec().decode(bytearray(data)) == envelope  # type: ignore[arg-type]
    assert default_codec().decode(memoryview(data)) == envelope  # type: ignore[arg-type]


def test_decode_many() -> None:
    batch = [_envelope(sequence=n) for n in range(1, 4)]
    codec = default_codec()
    assert codec.decode_many(codec.encode(e) for e in batch) == batch
    with pytest.raises(DecodeError, match="message 1 of the batch"):
        codec.decode_many([codec.encode(batch[0]), b"junk"])


def test_default_codec_is_built_once() -> None:
    assert default_codec() is default_codec()


# --- the single-object header --------------------------------------------------------


def test_header_is_magic_then_little_endian_fingerprint() -> None:
    codec = default_codec()
    data = codec.encode(_envelope())
    assert data[:2] == b"\xc3\x01"
    assert data[2:HEADER_SIZE] == codec.fingerprint.to_bytes(8, "little")
    assert codec.fingerprint == default_registry().current.fingerprint


def test_a_codec_writing_a_release_stamps_its_fingerprint() -> None:
    registry = default_registry()
    release = registry.releases[-1]
    codec = EventCodec(registry, writer=release)
    data = codec.encode(_envelope())
    assert data[2:HEADER_SIZE] == release.fingerprint.to_bytes(8, "little")
    assert default_codec().decode(data) == _envelope()


# --- invalid events name the field ---------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "event_type", "field", "reason"),
    [
        (
            _envelope(TaskStarted(task_id="t", attempt="3")),  # type: ignore[arg-type]
            "TaskStarted",
            "attempt",
            "expected int, got str",
        ),
        (
            _envelope(TaskStarted(task_id="t", attempt=True)),
            "TaskStarted",
            "attempt",
            "expected int, got bool",
        ),
        (
            _envelope(TaskStarted(task_id="t", attempt=2**64)),
            "TaskStarted",
            "attempt",
            "expected int in [",
        ),
        (
            _envelope(TaskStarted(task_id=None, attempt=1)),  # type: ignore[arg-type]
            "TaskStarted",
            "task_id",
            "expected str, got None",
        ),
        (
            _envelope(TaskStarted(task_id="t", attempt=1, node_id=5)),  # type: ignore[arg-type]
            "TaskStarted",
            "node_id",
            "expected str or None, got int",
        ),
        (
            _envelope(TaskStarted(task_id="t", attempt=1, inputs={"a": 1})),  # type: ignore[arg-type]
            "TaskStarted",
            "inputs",
            "expected UserData or None, got dict",
        ),
        (
            _envelope(TaskStarted(task_id="t", attempt=1, inputs=UserData(encoding="xml"))),  # type: ignore[arg-type]
            "TaskStarted",
            "inputs.encoding",
            "expected one of json, json_zstd, got str",
        ),
        (
            _envelope(TaskStarted(task_id="t", attempt=1, inputs=UserData("json", inline="x"))),  # type: ignore[arg-type]
            "TaskStarted",
            "inputs.inline",
            "expected bytes or None, got str",
        ),
        (
            _envelope(TaskCompleted(task_id="t", details=ExecutionDetails(duration="1s"))),  # type: ignore[arg-type]
            "TaskCompleted",
            "details.duration",
            "expected float or None, got str",
        ),
        (
            _envelope(
                ExecutionCreated(
                    pipeline_id="p",
                    tasks=(TaskSpec(task_id="a"), TaskSpec(task_id="b", depends_on=("a", 3))),  # type: ignore[arg-type]
                )
            ),
            "ExecutionCreated",
            "tasks[1].depends_on[1]",
            "expected str, got int",
        ),
        (
            _envelope(ExecutionCreated(pipeline_id="p", tasks=("a",))),  # type: ignore[arg-type]
            "ExecutionCreated",
            "tasks[0]",
            "expected TaskSpec, got str",
        ),
        (
            _envelope(ExecutionCreated(pipeline_id="p", tasks="ab")),  # type: ignore[arg-type]
            "ExecutionCreated",
            "tasks",
            "expected tuple, got str",
        ),
        (
            _envelope(sequence="1"),
            "TaskStarted",
            "Envelope.sequence",
            "expected int or None, got str",
        ),
        (
            _envelope(occurred_at=datetime(2025, 1, 1)),
            "TaskStarted",
            "Envelope.occurred_at",
            "timezone-aware",
        ),
        (_envelope(event_id="not-a-uuid"), "TaskStarted", "Envelope.event_id", "UUID"),
        (_envelope(producer="\ud800"), "TaskStarted", "Envelope.producer", "UTF-8"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_an_invalid_event_names_its_field(
    envelope: Envelope, event_type: str, field: str, reason: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        default_codec().encode(envelope)
    error = caught.value
    assert (error.event_type, error.field) == (event_type, field)
    assert reason in error.reason
    assert event_type in str(error) and field in str(error)


def test_a_payload_that_is_not_a_record_is_named() -> None:
    with pytest.raises(InvalidEvent) as caught:
        default_codec().encode(_envelope(payload={"task_id": "t"}))
    assert caught.value.field == "Envelope.payload"


def test_not_an_envelope() -> None:
    with pytest.raises(InvalidEvent, match="expected Envelope"):
        default_codec().encode(TaskStarted(task_id="t", attempt=1))  # type: ignore[arg-type]


# --- bad bytes -----------------------------------------------------------------------


def test_unknown_fingerprint() -> None:
    data = bytearray(default_codec().encode(_envelope()))
    data[2:HEADER_SIZE] = (0x0123456789ABCDEF).to_bytes(8, "little")
    with pytest.raises(DecodeError, match="unknown schema fingerprint 0x0123456789abcdef"):
        default_codec().decode(bytes(data))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than the 10-byte"),
        (b"\xc3\x01\x00", "shorter than the 10-byte"),
        (b'{"event_type": "TaskStarted"}', "not Avro single-object encoding"),
    ],
)
def test_not_a_single_object_message(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        default_codec().decode(data)


def test_truncated_and_trailing_bytes() -> None:
    data = default_codec().encode(_envelope())
    for end in range(HEADER_SIZE, len(data)):
        with pytest.raises(DecodeError):
            default_codec().decode(data[:end])
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        default_codec().decode(data + b"\x00")


def test_event_type_must_match_the_payload_branch() -> None:
    codec = default_codec()
    record = _avro_record(_envelope())
    record["event_type"] = "TaskCompleted"
    body = BytesIO()
    schemaless_writer(body, codec.writer.schema, record)
    with pytest.raises(DecodeError, match="event_type 'TaskCompleted' does not match"):
        codec.decode(codec.writer.header + body.getvalue())


@given(body=st.binary(max_size=400))
def test_garbage_after_a_good_header_is_a_decode_error(body: bytes) -> None:
    codec = default_codec()
    try:
        decoded = codec.decode(codec.writer.header + body)
    except DecodeError as error:
        assert error.reason
    else:
        assert isinstance(decoded, Envelope)


@EXAMPLES
@given(envelope=envelopes(), data=st.data())
def test_a_flipped_byte_never_leaks_a_raw_error(envelope: Envelope, data: st.DataObject) -> None:
    codec = default_codec()
    message = bytearray(codec.encode(envelope))
    index = data.draw(st.integers(HEADER_SIZE, len(message) - 1))
    message[index] ^= data.draw(st.integers(1, 255))
    try:
        decoded = codec.decode(bytes(message))
    except DecodeError:
        return
    assert isinstance(decoded, Envelope)


def test_decode_error_at_names_where_it_was_read() -> None:
    with pytest.raises(DecodeError) as caught:
        default_codec().decode(b"garbage!!!!!")
    located = caught.value.at("orchestrator.pipeline.events", 3, 1207)
    assert (located.topic, located.partition, located.offset) == (
        "orchestrator.pipeline.events",
        3,
        1207,
    )
    assert located.reason == caught.value.reason
    assert "orchestrator.pipeline.events[3]@1207" in str(located)


def test_a_changed_envelope_does_not_decode_as_the_original() -> None:
    codec = default_codec()
    original = _envelope()
    assert codec.decode(codec.encode(replace(original, epoch=9))) != original
