"""The compiled Avro encoders and decoders (``events._avro*``) on what the event schemas
do not use yet: 32-bit ints, unions with a primitive branch, negative array blocks,
multi-byte varints, and the types it refuses to compile."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.events._avro import Corrupt, Mismatch
from orchestrator.events._avro_decode import compile_decoder
from orchestrator.events._avro_encode import compile_encoder


@dataclass(frozen=True)
class Item:
    name: str


@dataclass(frozen=True)
class Sample:
    small: int
    flag: bool
    ratio: float
    raw: bytes
    items: tuple[Item, ...]
    choice: Item | int | None


CLASSES = {"Item": Item, "Sample": Sample}
SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "t.Sample",
        "fields": [
            {"name": "small", "type": "int"},
            {"name": "flag", "type": "boolean"},
            {"name": "ratio", "type": "double"},
            {"name": "raw", "type": "bytes"},
            {
                "name": "items",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Item",
                        "fields": [{"name": "name", "type": "string"}],
                    },
                },
            },
            {"name": "choice", "type": ["null", "Item", "long"]},
        ],
    }
)
ENCODE = compile_encoder(SCHEMA, CLASSES)
DECODE = compile_decoder(SCHEMA, CLASSES)

items = st.builds(Item, name=st.text(max_size=5))
samples = st.builds(
    Sample,
    small=st.integers(-(2**31), 2**31 - 1),
    flag=st.booleans(),
    ratio=st.floats(allow_nan=False),
    raw=st.binary(max_size=300),  # lengths past 63: two-byte varints
    items=st.lists(items, max_size=3).map(tuple),
    choice=st.none() | items | st.integers(-(2**63), 2**63 - 1),
)


def _as_dict(sample: Sample) -> dict[str, Any]:
    choice = sample.choice
    return {
        "small": sample.small,
        "flag": sample.flag,
        "ratio": sample.ratio,
        "raw": sample.raw,
        "items": [{"name": i.name} for i in sample.items],
        "choice": ("t.Item", {"name": choice.name}) if isinstance(choice, Item) else choice,
    }


def _encode(sample: Any) -> bytes:
    out = bytearray()
    ENCODE(sample, out)
    return bytes(out)


@given(sample=samples)
def test_matches_fastavro_both_ways(sample: Sample) -> None:
    data = _encode(sample)
    reference = BytesIO()
    schemaless_writer(reference, SCHEMA, _as_dict(sample))
    assert data == reference.getvalue()
    assert DECODE(data, 0) == (sample, len(data))
    assert schemaless_reader(BytesIO(data), SCHEMA, None) == _as_dict(sample) | {
        "choice": _as_dict(sample)["choice"][1]
        if isinstance(sample.choice, Item)
        else sample.choice
    }


def test_int_is_32_bit() -> None:
    sample = Sample(small=2**31, flag=True, ratio=1.0, raw=b"", items=(), choice=None)
    with pytest.raises(Mismatch, match=r"expected int in \[-2147483648, 2147483647\]"):
        _encode(sample)


def test_an_int_is_accepted_for_a_double() -> None:
    sample = Sample(small=1, flag=False, ratio=3, raw=b"", items=(), choice=None)  # type: ignore[arg-type]
    decoded, _ = DECODE(_encode(sample), 0)
    assert decoded.ratio == 3.0 and isinstance(decoded.ratio, float)


def test_a_union_with_a_primitive_names_every_branch() -> None:
    sample = Sample(small=1, flag=False, ratio=0.5, raw=b"", items=(), choice="x")  # type: ignore[arg-type]
    with pytest.raises(Mismatch) as caught:
        _encode(sample)
    assert (caught.value.path, caught.value.reason) == ("choice", "expected int or None, got str")


def test_negative_block_counts_are_read() -> None:
    # small=1, flag=true, ratio=0.0, raw=b"", items: a block of -1 item with its byte size,
    # then the end of the array; choice=null.
    data = b"\x02\x01" + bytes(8) + b"\x00" + b"\x01\x04\x02a\x00" + b"\x00"
    sample, end = DECODE(data, 0)
    assert sample.items == (Item(name="a"),)
    assert end == len(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x02\x02", "boolean byte 2"),
        (b"\x02\x01" + bytes(8) + b"\x01", "length -1"),
        (b"\x02\x01" + bytes(8) + b"\x00\x7e", "array of 63 items runs past the end"),
        (b"\x02\x01" + bytes(8) + b"\x00\x00\x06", "union index byte 6 out of range"),
        (b"\xff" * 11, "varint longer than 10 bytes"),
    ],
)
def test_corrupt_bytes(data: bytes, reason: str) -> None:
    with pytest.raises(Corrupt, match=reason):
        DECODE(data, 0)


UNSUPPORTED = [
    {"type": "map", "values": "string"},
    {"type": "fixed", "name": "F", "size": 4},
    "float",
    ["null", "string", "long"],
]


def _item_schema(field_type: Any) -> Any:
    return parse_schema(
        {"type": "record", "name": "Item", "fields": [{"name": "name", "type": field_type}]}
    )


@pytest.mark.parametrize("field_type", UNSUPPORTED, ids=str)
def test_what_it_cannot_compile_is_refused_up_front(field_type: Any) -> None:
    with pytest.raises(TypeError, match="unsupported"):
        compile_encoder(_item_schema(field_type), CLASSES)
    with pytest.raises(TypeError, match="unsupported"):
        compile_decoder(_item_schema(field_type), CLASSES)


def test_an_array_of_empty_items_is_refused_by_the_decoder() -> None:
    # Its count could not be checked against the bytes left.
    with pytest.raises(TypeError, match="unsupported array"):
        compile_decoder(_item_schema({"type": "array", "items": "null"}), CLASSES)


@dataclass(frozen=True)
class Stamped:
    at: datetime
    name: str


STAMPED = parse_schema(
    {
        "type": "record",
        "name": "t.Stamped",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "name", "type": "string"},
        ],
    }
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)


class Name(str):
    """A str subclass: encoded like a str, never kept in the encoder's string cache."""


@given(
    stamps=st.lists(
        st.integers(MIN_MICROS, MAX_MICROS) | st.integers(2**48 - 5, 2**48 + 5), max_size=8
    ),
    names=st.lists(st.sampled_from(["a", "b" * 70, "é" * 60, "x" * 200]), min_size=8, max_size=8),
)
def test_cached_timestamps_and_strings_are_what_fastavro_writes(
    stamps: list[int], names: list[str]
) -> None:
    # One encoder for every example: its caches (the upper bytes of the last timestamp,
    # short strings) carry over from one value to the next as they do in a process.
    now = int((datetime.now(UTC) - EPOCH).total_seconds() * 1e6)
    micros = [now, now + 1, now + 2**20, now - 2**21, *stamps, now, 2**48, 2**48 - 1]
    for n, value in enumerate(micros):
        name = names[n % len(names)]
        record = Stamped(
            at=EPOCH + timedelta(microseconds=value), name=Name(name) if n % 3 else name
        )
        out = bytearray()
        STAMPED_ENCODE(record, out)
        reference = BytesIO()
        schemaless_writer(reference, STAMPED, {"at": record.at, "name": name})
        assert bytes(out) == reference.getvalue(), value


STAMPED_ENCODE = compile_encoder(STAMPED, {"Stamped": Stamped})
