"""Dead letters: poison records go to ``<topic>.dlq`` and to the ``dead_letters`` table.

A record that does not decode (garbage bytes, an unknown schema fingerprint) or that
the fold refuses is copied, bytes unchanged, to the topic's DLQ with headers naming
why and where it came from, and recorded in ``dead_letters`` in the same transaction
as the batch; the partition keeps flowing (design §4: nothing is dropped silently).

Order matters: the DLQ record is produced (and acknowledged) *before* the batch
commits. A crash in between produces it again on restart — a duplicate in the DLQ
topic is harmless, a missing one would be a silent drop; ``UNIQUE(projection, topic,
partition, offset)`` keeps the table exact.

A record too big to copy (over ``ProjectionSettings.max_dead_letter_bytes``, below the
producer's ``max_request_size``) is dead-lettered *by reference*: the DLQ record and the
row hold no bytes, only where it is (topic, partition, offset), its size and the reason
(header ``dlq.by_reference``), so one huge record cannot stop a partition.

``replay`` re-submits a dead letter's original bytes to its original topic (after the
bug or the schema that made it poison was fixed) and stamps ``replayed_at``; bytes that
do not decode (they would only be poison again) are refused with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

import asyncpg

from orchestrator.events import DecodeError, Decoder, Position, default_codec
from orchestrator.projections._batch import DeadLetter
from orchestrator.projections.errors import DeadLetterNotFound, DeadLetterRefused
from orchestrator.projections.settings import ProjectionSettings

logger = logging.getLogger(__name__)

HEADER_REASON = "dlq.reason"
HEADER_TOPIC = "dlq.original.topic"
HEADER_PARTITION = "dlq.original.partition"
HEADER_OFFSET = "dlq.original.offset"
HEADER_ERROR_CLASS = "dlq.error.class"
HEADER_PROJECTION = "dlq.projection"
HEADER_BY_REFERENCE = "dlq.by_reference"
HEADER_SIZE = "dlq.original.size"

_COLUMNS = (
    "projection",
    "topic",
    "partition",
    '"offset"',
    "key",
    "reason",
    "error_class",
    "execution_id",
    "event_type",
    "raw",
    "dlq_topic",
)
_INSERT = (
    f"INSERT INTO dead_letters ({', '.join(_COLUMNS)})"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::bytea[],"
    " $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[], $11::text[])"
    ' ON CONFLICT (projection, topic, partition, "offset") DO NOTHING'
)


class RawAppender(Protocol):
    """What the sink needs to produce bytes as they are (``events.log.EventLog`` fits)."""

    async def append_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Position: ...


def dlq_headers(projection: str, letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers a DLQ record carries: why, and where it was read."""
    extra = []
    if letter.by_reference is not None:
        extra = [
            (HEADER_BY_REFERENCE, b"1"),
            (HEADER_SIZE, str(letter.by_reference).encode()),
        ]
    return [
        *extra,
        (HEADER_REASON, letter.reason.encode()),
        (HEADER_TOPIC, letter.topic.encode()),
        (HEADER_PARTITION, str(letter.partition).encode()),
        (HEADER_OFFSET, str(letter.offset).encode()),
        (HEADER_ERROR_CLASS, letter.error_class.encode()),
        (HEADER_PROJECTION, projection.encode()),
    ]


class DeadLetterSink:
    """Produces a batch's poison records to their DLQ topics and records them."""

    def __init__(self, settings: ProjectionSettings, producer: RawAppender) -> None:
        self._settings = settings
        self._producer = producer

    async def publish(self, conn: asyncpg.Connection, letters: Sequence[DeadLetter]) -> None:
        """Produce (and wait for) each letter's DLQ record, then insert the rows in the
        caller's transaction. Letters the ``dead_letter_projection`` already holds (a
        rebuild meeting the live projection's poison again) are recorded, not produced."""
        if not letters:
            return
        s = self._settings
        known: set[tuple[str, int, int]] = set()
        if s.dead_letter_projection is not None:
            rows = await conn.fetch(
                'SELECT topic, partition, "offset" FROM dead_letters WHERE projection = $1'
                ' AND (topic, partition, "offset") IN'
                " (SELECT * FROM unnest($2::text[], $3::int4[], $4::int8[]))",
                s.dead_letter_projection,
                [d.topic for d in letters],
                [d.partition for d in letters],
                [d.offset for d in letters],
            )
            known = {(r["topic"], r["partition"], r["offset"]) for r in rows}
        letters = [self._fit(d) for d in letters]
        fresh = [d for d in letters if (d.topic, d.partition, d.offset) not in known]
        await asyncio.gather(
            *(
                self._producer.append_raw(
                    s.dlq_topic(d.topic), d.raw, key=d.key, headers=dlq_headers(s.name, d)
                )
                for d in fresh
            )
        )
        for d in fresh:
            logger.warning(
                "dead letter: %s[%s]@%s (%s, execution %s) -> %s: %s",
                d.topic,
                d.partition,
                d.offset,
                d.error_class,
                d.execution_id,
                s.dlq_topic(d.topic),
                d.reason,
            )
        await conn.execute(
            _INSERT,
            [s.name] * len(letters),
            [d.topic for d in letters],
            [d.partition for d in letters],
            [d.offset for d in letters],
            [d.key for d in letters],
            [d.reason for d in letters],
            [d.error_class for d in letters],
            [d.execution_id for d in letters],
            [d.event_type for d in letters],
            [d.raw for d in letters],
            [s.dlq_topic(d.topic) for d in letters],
        )

    def _fit(self, letter: DeadLetter) -> DeadLetter:
        """The letter itself, or a reference to it when its bytes are too big to copy."""
        limit = self._settings.max_dead_letter_bytes
        if len(letter.raw) <= limit:
            return letter
        return replace(
            letter,
            raw=b"",
            reason=f"{letter.reason} [by reference: {len(letter.raw)} bytes at "
            f"{letter.topic}[{letter.partition}]@{letter.offset}, over {limit}]",
            by_reference=len(letter.raw),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterRow:
    """One row of ``dead_letters`` as the CLI lists it."""

    id: int
    projection: str
    topic: str
    partition: int
    offset: int
    reason: str
    error_class: str
    execution_id: str | None
    event_type: str | None
    dlq_topic: str
    size: int
    created_at: datetime
    replayed_at: datetime | None


async def list_dead_letters(
    conn: asyncpg.Connection,
    *,
    projection: str | None = None,
    include_replayed: bool = True,
    limit: int = 100,
) -> list[DeadLetterRow]:
    """The newest dead letters first (optionally of one projection, or not yet replayed)."""
    rows = await conn.fetch(
        'SELECT id, projection, topic, partition, "offset", reason, error_class,'
        " execution_id, event_type, dlq_topic, octet_length(raw) AS size, created_at,"
        " replayed_at FROM dead_letters"
        " WHERE ($1::text IS NULL OR projection = $1) AND ($2 OR replayed_at IS NULL)"
        " ORDER BY id DESC LIMIT $3",
        projection,
        include_replayed,
        limit,
    )
    return [
        DeadLetterRow(
            id=r["id"],
            projection=r["projection"],
            topic=r["topic"],
            partition=r["partition"],
            offset=r["offset"],
            reason=r["reason"],
            error_class=r["error_class"],
            execution_id=r["execution_id"],
            event_type=r["event_type"],
            dlq_topic=r["dlq_topic"],
            size=r["size"],
            created_at=r["created_at"],
            replayed_at=r["replayed_at"],
        )
        for r in rows
    ]


async def replay_dead_letter(
    conn: asyncpg.Connection,
    producer: RawAppender,
    dead_letter_id: int,
    *,
    codec: Decoder | None = None,
) -> Position:
    """Append the dead letter's original bytes (and key) to its original topic, then
    stamp ``replayed_at``; return where the copy landed. The processor folds it anew.

    Bytes that ``codec`` (default: the repository's) cannot decode are refused
    (``DeadLetterRefused`` with the reason): re-submitted, they would only be poison
    again. A letter kept by reference has no bytes to re-submit."""
    row = await conn.fetchrow(
        "SELECT topic, key, raw, reason FROM dead_letters WHERE id = $1", dead_letter_id
    )
    if row is None:
        raise DeadLetterNotFound(dead_letter_id)
    if not row["raw"]:
        raise DeadLetterRefused(dead_letter_id, f"no bytes kept ({row['reason']})")
    try:
        (codec or default_codec()).decode(row["raw"])
    except DecodeError as exc:
        raise DeadLetterRefused(dead_letter_id, exc.reason) from exc
    position = await producer.append_raw(
        row["topic"],
        row["raw"],
        key=row["key"],
        headers=[("dlq.replay_of", str(dead_letter_id).encode())],
    )
    await conn.execute("UPDATE dead_letters SET replayed_at = now() WHERE id = $1", dead_letter_id)
    logger.info("replayed dead letter %s to %s", dead_letter_id, position.token())
    return position
