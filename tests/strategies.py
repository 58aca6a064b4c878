"""Hypothesis strategies for payloads and envelopes, valid against ``schemas/current``.

Reusable by any test: ``envelopes()`` draws any event, ``envelopes(PAYLOADS["TaskStarted"])``
one type; ``payloads()`` draws any payload. Values cover each field's whole schema range
(64-bit longs, any text, empty and large arrays, all UserData shapes) rather than
realistic histories; build sequences of events for the fold on top of these.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from orchestrator.events.catalogue import (
    PAYLOAD_TYPES,
    ExecutionContext,
    ExecutionDetails,
    Payload,
    TaskSpec,
)
from orchestrator.events.envelope import Envelope
from orchestrator.events.userdata import BlobRef, UserData

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

# Any text PostgreSQL can store (no NUL); identifiers without control characters
# (events.limits): what a codec accepts.
texts = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40
)
ids = st.one_of(
    st.uuids().map(str),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20),
)
optional_texts = st.none() | texts
counts = st.integers(min_value=0, max_value=LONG_MAX)  # small and huge: all varint lengths
positive = st.integers(min_value=1, max_value=LONG_MAX)
doubles = st.floats(allow_nan=False)  # NaN != NaN would break round-trip equality
optional_doubles = st.none() | doubles

# Any offset: the codec stores UTC microseconds, and aware datetimes compare by instant.
# The range stays a day inside datetime's, so the UTC value is representable.
timezones = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=timezones
)

blob_refs = st.builds(
    BlobRef,
    uri=texts,
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    size=counts,
)
encodings = st.sampled_from(["json", "json_zstd"])
user_data = st.one_of(
    st.builds(UserData, encoding=encodings, inline=st.binary(max_size=200)),
    st.builds(UserData, encoding=encodings, ref=blob_refs),
    st.builds(UserData, encoding=encodings),  # neither: schema-valid, means "no value"
)
optional_user_data = st.none() | user_data

task_specs = st.builds(TaskSpec, task_id=ids, depends_on=st.lists(ids, max_size=4).map(tuple))
contexts = st.builds(
    ExecutionContext,
    user_id=optional_texts,
    input_data=optional_user_data,
    configuration=optional_user_data,
)
details = st.builds(
    ExecutionDetails,
    duration=optional_doubles,
    memory_used=optional_texts,
    model_calls=st.none() | counts,
    tokens_used=st.none() | counts,
)

_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "ExecutionCreated": {
        "pipeline_id": ids,
        "context": contexts,
        "tasks": st.lists(task_specs, max_size=70).map(tuple),  # past 63: two-byte counts
        "forked_from": st.none() | ids,
        "fork_sequence": st.none() | positive,
        "root_execution_id": st.none() | ids,
    },
    "ExecutionValidationFailed": {"error": texts},
    "ExecutionPaused": {"reason": optional_texts},
    "ExecutionResumed": {"from_checkpoint": st.none() | ids, "reason": optional_texts},
    "ExecutionCompleted": {"outputs": optional_user_data},
    "ExecutionFailed": {"error": texts},
    "ExecutionCancelled": {"reason": optional_texts},
    "TaskScheduled": {"task_id": ids},
    "TaskStarted": {
        "task_id": ids,
        "attempt": positive,
        "inputs": optional_user_data,
        "node_id": st.none() | ids,
    },
    "TaskCompleted": {
        "task_id": ids,
        "outputs": optional_user_data,
        "metadata": optional_user_data,
        "details": details,
    },
    "TaskFailed": {"task_id": ids, "attempt": positive, "error": texts, "retryable": st.booleans()},
    "TaskRetryScheduled": {"task_id": ids, "attempt": positive, "delay_seconds": doubles},
    "TaskSkipped": {"task_id": ids, "reason": optional_texts},
    "CheckpointSaved": {
        "checkpoint_id": ids,
        "name": texts,
        "task_id": st.none() | ids,
        "data": optional_user_data,
        "metadata": optional_user_data,
        "progress": optional_doubles,
    },
    "CheckpointRestored": {"checkpoint_id": ids},
    "SharedVariableSet": {
        "namespace": ids,
        "name": ids,
        "type": texts,
        "value": optional_user_data,
        "immutable": st.booleans(),
        "updated_by": optional_texts,
        "version": positive,
    },
    "SharedVariableDeleted": {
        "namespace": ids,
        "name": ids,
        "deleted_by": optional_texts,
        "version": positive,
    },
    "ExecutionOwnershipTaken": {"epoch": counts, "node_id": ids},
    "CheckpointWritesSaved": {
        "checkpoint_id": ids,
        "task_id": ids,
        "task_path": optional_texts,
        "writes": optional_user_data,
    },
    "CheckpointsDeleted": {
        "checkpoint_ids": st.lists(ids, max_size=3).map(tuple),
        "reason": optional_texts,
    },
}
"""Hand-written field strategies by event type, where the ranges matter (see
:func:`derived` for the others)."""

PAYLOADS: dict[str, st.SearchStrategy[Any]] = {
    name: st.builds(PAYLOAD_TYPES[name], **fields) for name, fields in _FIELDS.items()
}
"""One strategy per payload record, by event type."""

_BY_ANNOTATION: dict[str, st.SearchStrategy[Any]] = {
    "str": ids,
    "str | None": st.none() | ids,  # valid as text and as an identifier
    "int": counts,
    "int | None": st.none() | counts,
    "float": doubles,
    "float | None": optional_doubles,
    "bool": st.booleans(),
    "UserData | None": optional_user_data,
    "tuple[str, ...]": st.lists(ids, max_size=3).map(tuple),
}


def derived(cls: type[Payload]) -> st.SearchStrategy[Any]:
    """A strategy built from a payload class's field annotations, so a new event type
    needs no strategy here (its three places are schema, catalogue class, fold case)."""
    fields = {f.name: _BY_ANNOTATION.get(str(f.type)) for f in dataclasses.fields(cls)}
    missing = [name for name, strategy in fields.items() if strategy is None]
    assert not missing, f"{cls.__name__}: no strategy for fields {missing}; add one to PAYLOADS"
    return st.builds(cls, **fields)


for _name, _cls in PAYLOAD_TYPES.items():
    if _name not in PAYLOADS:
        PAYLOADS[_name] = derived(_cls)


def payloads() -> st.SearchStrategy[Payload]:
    """Any payload record."""
    return st.one_of(*PAYLOADS.values())


def envelopes(payload: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Envelope]:
    """An envelope around ``payload`` (default: any payload), every envelope field drawn."""
    return st.builds(
        Envelope,
        execution_id=st.none() | ids,
        pipeline_id=st.none() | ids,
        sequence=st.none() | positive,
        epoch=counts,
        payload=payloads() if payload is None else payload,
        producer=texts,
        event_id=st.uuids().map(str),
        occurred_at=datetimes,
        correlation_id=st.none() | ids,
        causation_id=st.none() | ids,
    )
