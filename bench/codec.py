"""The event codec's cost per event: encode and decode of a ~300-byte ``TaskStarted``.

Prints microseconds per event (best of several rounds) and events per second on one
core, for the compiled codec and, for reference, for fastavro alone on the same record
as a dict (what the codec would cost if it only converted to and from dicts).
No assertions. Run ``python -m bench.codec [--events 100000]``.
"""

from __future__ import annotations

import argparse
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from orchestrator.events import HEADER_SIZE, Envelope, TaskStarted, UserData, default_codec

ROUNDS = 5


def sample_envelope() -> Envelope:
    """A typical event: ids as UUIDs, a small JSON input, about 300 bytes encoded."""
    inputs = b'{"prompt":"summarise the quarterly report","max_tokens":512,"temperature":0.2}'
    return Envelope(
        execution_id=str(uuid.uuid4()),
        pipeline_id="research_assistant",
        sequence=42,
        epoch=7,
        producer="node-a1b2c3",
        occurred_at=datetime.now(UTC),
        correlation_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        payload=TaskStarted(
            task_id="summarise",
            attempt=1,
            inputs=UserData(encoding="json", inline=inputs),
            node_id="node-a1b2c3",
        ),
    )


def _microseconds(function: Callable[[], Any], events: int) -> float:
    return min(timeit.repeat(function, number=events, repeat=ROUNDS)) / events * 1e6


def _line(name: str, micros: float) -> str:
    return f"{name:<28} {micros:7.2f} µs/event  {1e6 / micros:10,.0f} events/s"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000, help="events per round")
    args = parser.parse_args(argv)

    codec = default_codec()
    envelope = sample_envelope()
    data = codec.encode(envelope)
    schema = codec.writer.schema
    as_dict = schemaless_reader(BytesIO(data[HEADER_SIZE:]), schema, None, return_record_name=True)
    body = data[HEADER_SIZE:]

    def fastavro_encode() -> bytes:
        out = BytesIO()
        schemaless_writer(out, schema, as_dict)
        return out.getvalue()

    def fastavro_decode() -> Any:
        return schemaless_reader(BytesIO(body), schema, None, return_record_name=True)

    print(f"event: {envelope.event_type}, {len(data)} bytes, {args.events:,} events x {ROUNDS}")
    print(_line("codec.encode", _microseconds(lambda: codec.encode(envelope), args.events)))
    print(_line("codec.decode", _microseconds(lambda: codec.decode(data), args.events)))
    print(_line("fastavro dict encode (ref)", _microseconds(fastavro_encode, args.events)))
    print(_line("fastavro dict decode (ref)", _microseconds(fastavro_decode, args.events)))


if __name__ == "__main__":
    main()
