"""An independent verifier of the log and the read models, for the fault tests.

It shares no code with the product on purpose: it reads the topic with aiokafka,
decodes with fastavro and the ``.avsc`` files of ``schemas/`` (single-object encoding:
``C3 01`` + CRC-64-AVRO fingerprint + body), and folds with its own few lines. It
checks that

- every acknowledged append (an ``event_id`` the test was told was written) is in the
  log exactly once;
- the read model (``pipeline_states``) equals this fold of the log: for each execution
  its ``last_sequence`` and ``epoch``; and the archive (``execution_events``) holds each
  record of the log once, with as many applied events as the fold applied.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import fastavro
from aiokafka import AIOKafkaConsumer
from fastavro.repository.base import AbstractSchemaRepository
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
_MAGIC = b"\xc3\x01"


class _Siblings(AbstractSchemaRepository):
    """fastavro's repository hook: a named type ``ns.Name`` is the file ``Name.avsc``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, name: str) -> Any:
        return json.loads((self.directory / f"{name.rsplit('.', 1)[-1]}.avsc").read_text())


def _load_dir(directory: Path) -> Any:
    """The ``Envelope`` of one schema directory, named records inlined from siblings."""
    return load_schema("orchestrator.events.Envelope", repo=_Siblings(directory))


def _schemas() -> tuple[dict[bytes, Any], Any]:
    """Writer schemas by fingerprint (current and every release) and the reader schema."""
    by_fp: dict[bytes, Any] = {}
    reader = _load_dir(SCHEMAS / "current")
    for directory in [SCHEMAS / "current", *sorted((SCHEMAS / "releases").glob("v*"))]:
        parsed = _load_dir(directory)
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        by_fp[fp] = by_fp[fp[::-1]] = parsed  # byte order: accept either spelling
    return by_fp, reader


@dataclass
class LogRecord:
    partition: int
    offset: int
    event: dict[str, Any]


@dataclass
class Verdict:
    """What the verifier found; ``problems`` is empty when everything holds."""

    records: int = 0
    executions: int = 0
    applied: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems[:30])


async def read_log(bootstrap: str, topic: str) -> list[LogRecord]:
    """Every record of ``topic``, decoded with fastavro and ``schemas/`` only."""
    by_fp, reader = _schemas()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )  # no group: the subscription is every partition
    await consumer.start()
    out: list[LogRecord] = []
    try:
        async with asyncio.timeout(30):
            while not consumer.assignment():  # noqa: ASYNC110 - aiokafka has no event for it
                await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    out.append(
                        LogRecord(tp.partition, record.offset, _decode(record.value, by_fp, reader))
                    )
    finally:
        await consumer.stop()
    return out


def _decode(value: bytes, by_fp: dict[bytes, Any], reader: Any) -> dict[str, Any]:
    if value[:2] != _MAGIC:
        raise AssertionError(f"not Avro single-object encoding: {value[:10]!r}")
    writer = by_fp.get(value[2:10])
    if writer is None:
        raise AssertionError(f"unknown fingerprint {value[2:10].hex()}")
    event: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(value[10:]), writer, reader)
    return event


def fold_log(records: Iterable[LogRecord]) -> dict[str, tuple[int, int, int]]:
    """Per execution: (last_sequence, epoch, applied events), by this file's own fold:
    a sequenced event applies when its epoch is not below the execution's and its
    sequence is the next one; an ownership event raises the epoch."""
    out: dict[str, tuple[int, int, int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        e = r.event
        eid = e["execution_id"]
        if eid is None:
            continue
        current = out.get(eid)
        if e["event_type"] == "ExecutionOwnershipTaken":
            new_epoch = e["payload"]["epoch"]
            if current is not None and new_epoch > current[1]:
                out[eid] = (current[0], new_epoch, current[2] + 1)
            continue
        if current is None:
            if e["event_type"] == "ExecutionCreated" and e["sequence"] == 1:
                out[eid] = (1, e["epoch"], 1)
            continue
        last, epoch, applied = current
        if e["epoch"] >= epoch and e["sequence"] == last + 1:
            out[eid] = (last + 1, max(epoch, e["epoch"]), applied + 1)
    return out


async def verify(
    bootstrap: str,
    topic: str,
    dsn: str,
    acknowledged: Iterable[str],
    *,
    pipeline_states: str = "pipeline_states",
) -> Verdict:
    """Check the log against the acknowledged event ids and the read model against the
    fold of the log; return the verdict (``.check()`` asserts it is clean)."""
    records = await read_log(bootstrap, topic)
    verdict = Verdict(records=len(records))
    seen = Counter(str(r.event["event_id"]) for r in records)
    for event_id in acknowledged:
        if seen[event_id] != 1:
            verdict.problems.append(
                f"acknowledged event {event_id} is in the log {seen[event_id]} times"
            )
    folded = fold_log(records)
    verdict.executions = len(folded)
    verdict.applied = sum(a for _, _, a in folded.values())
    conn = await asyncpg.connect(dsn)
    try:
        rows = {
            r["execution_id"]: (r["last_sequence"], r["epoch"])
            for r in await conn.fetch(
                f"SELECT execution_id, last_sequence, epoch FROM {pipeline_states}"
            )
        }
        archived = await conn.fetch(
            'SELECT partition, "offset", execution_id, outcome FROM execution_events '
            "WHERE topic = $1",
            topic,
        )
    finally:
        await conn.close()
    for eid, (last, epoch, _) in folded.items():
        if rows.get(eid) != (last, epoch):
            verdict.problems.append(
                f"{eid}: read model has (last_sequence, epoch) {rows.get(eid)}, "
                f"the log folds to {(last, epoch)}"
            )
    for eid in rows.keys() - folded.keys():
        verdict.problems.append(f"{eid}: in the read model, not in the log")
    at = Counter((r["partition"], r["offset"]) for r in archived)
    twice = [k for k, n in at.items() if n > 1]
    if twice:
        verdict.problems.append(f"archived more than once: {twice[:5]}")
    in_log = {(r.partition, r.offset) for r in records if r.event["execution_id"] is not None}
    missing = in_log - at.keys()
    if missing:
        verdict.problems.append(
            f"{len(missing)} log record(s) not archived, e.g. {sorted(missing)[:5]}"
        )
    applied_rows = Counter(r["execution_id"] for r in archived if r["outcome"] == "applied")
    for eid, (_, _, applied) in folded.items():
        if applied_rows[eid] != applied:
            verdict.problems.append(
                f"{eid}: archive has {applied_rows[eid]} applied events, the log folds {applied}"
            )
    return verdict


async def verify_eventually(
    bootstrap: str,
    topic: str,
    dsn: str,
    acknowledged: Iterable[str],
    *,
    within: float = 90.0,
) -> Verdict:
    """``verify`` until it is clean (the processor is catching up) or ``within`` passed."""
    acknowledged = list(acknowledged)
    deadline = asyncio.get_running_loop().time() + within
    while True:
        verdict = await verify(bootstrap, topic, dsn, acknowledged)
        if not verdict.problems or asyncio.get_running_loop().time() > deadline:
            return verdict
        await asyncio.sleep(1.0)
