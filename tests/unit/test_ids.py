"""Event and checkpoint ids are random version-4 UUIDs, whatever builds them."""

from __future__ import annotations

import uuid

from orchestrator.commands import SaveCheckpoint
from orchestrator.events import Envelope, TaskStarted, uuid4_hex


def test_event_ids_are_canonical_random_uuids_and_differ() -> None:
    ids = {
        Envelope(
            execution_id="e",
            pipeline_id="p",
            epoch=1,
            sequence=1,
            payload=TaskStarted(task_id="t", attempt=1),
            producer="n",
        ).event_id
        for _ in range(1000)
    }
    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_checkpoint_ids_carry_a_random_uuid() -> None:
    ids = {SaveCheckpoint(name="n", task_id="t").checkpoint_id for _ in range(1000)}
    assert len(ids) == 1000
    for text in ids:
        assert text.startswith("ckpt_")
        assert uuid.UUID(hex=text.removeprefix("ckpt_")).version == 4
    assert len(uuid4_hex()) == 32
