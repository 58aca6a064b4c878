"""Compression as the seed's `compression` block configures it.

Data written under any algorithm reads under every other setting (the algorithm
travels with the bytes), data written before there was a choice still reads, the
selective options act, and a decompression bomb in any algorithm is refused before
more than the limit is allocated.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

import cramjam
import pytest

from orchestrator.events import COMPRESSION_ALGORITHMS, CompressionError, inspect, pack, unpack
from orchestrator.events.compression import TAG, Algorithm, Compressor
from orchestrator.events.envelope import Position
from orchestrator.events.errors import UserDataError
from orchestrator.events.fold import fold
from orchestrator.events.limits import InputLimits, event_problem
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.userdata import (
    UserData,
    declared_size,
    decode_user_data,
    encode_user_data,
)
from orchestrator.snapshots.codec import SnapshotCodec, codec_from_settings
from tests.fakes import DictBlobStore

ALL: tuple[Algorithm, ...] = COMPRESSION_ALGORITHMS
VALUE = {
    "metadata": {"source": "web", "n": 3},
    "results": [{"title": f"result {i}", "body": "quantum " * 40} for i in range(30)],
    "small_values": [1, 2, 3],
}

# Written by the zstd-only release (zstandard, a bare frame), kept byte for byte.
LEGACY_USER_DATA = base64.b64decode(
    "KLUv/WDYCk0BABQCeyJtZXRhZGF0YSI6eyJuIjoxfSwicmVzdWx0IjoieCJ9AQDTzgdO"
)
LEGACY_SNAPSHOT = base64.b64decode(
    "T1NOUAEAAABo4dCxj+XmmYoUAgAAFmV4ZWNfbGVnYWN5JHJlc2VhcmNoX2Fzc2lzdGFudAoEEmNhbmNlbGxlZAJ0AAoAgICC4ojSowbmDrADVuWLqxZGf0iHhjRsDQ+l3Q8reV/Xkpg6w9xbNCNzkq9X9A2BKLUv/WCzAnUGAGLKJiqQGbYB//+7CInuNRXfuMP35hqQ3cWWACPWMMmkqsYTJs0gZLXqd1oniTtLKdaWxZRSEWQAMC/juxMQzXnf8TfSNr2MPPgGshLxw44VGHLctuOz13nJChs05jjKR71ehhAJ1djyEmrb5FDTVBEhUVxYrINBepiAaHBYSCvw2HyyjOhzOvyGAvbbVllrPwRI26tTggXYjM8H/fGBEwCqBR+dGQDwAMKmEkITHyhsqQEou3yaaCYsx5YoRlRwFW8ZFQyhMhhXMHAZ8Cpn"
)


@pytest.mark.parametrize("writer", ALL)
def test_user_data_written_under_each_algorithm_reads_back(writer: Algorithm) -> None:
    data = encode_user_data(VALUE, compress_threshold=64, algorithm=writer)
    assert data.encoding == "json_zstd" and data.inline is not None
    assert inspect(data.inline).algorithm == writer
    assert decode_user_data(data) == VALUE
    assert len(data.inline) < len(json.dumps(VALUE))


@pytest.mark.parametrize("writer", ALL)
@pytest.mark.parametrize("reader", ALL)
def test_snapshots_written_under_one_algorithm_read_under_any_other(
    writer: Algorithm, reader: Algorithm
) -> None:
    state = fold(simulate_execution("exec_c", random.Random(3), tasks=4, payload_bytes=400))
    assert state is not None
    written = codec_from_settings(algorithm=writer, min_size=64).encode(
        state, Position("t", 0, 9), occurred_at=None
    )
    assert written.header.compression == writer
    read = codec_from_settings(algorithm=reader, min_size=64).decode(written.data, "k")
    assert read.state == state


@pytest.mark.parametrize("writer", ALL)
@pytest.mark.parametrize("reader", ALL)
def test_blobs_written_under_one_algorithm_read_under_any_other(
    writer: Algorithm, reader: Algorithm
) -> None:
    blobs = DictBlobStore()
    rng = random.Random(1)
    value = {"text": "".join(rng.choice("abcdefgh") for _ in range(40_000))}
    data = encode_user_data(
        value, compress_threshold=0, claim_check_threshold=1024, blob_store=blobs, algorithm=writer
    )
    assert data.ref is not None and data.inline is None
    [stored] = blobs.objects.values()
    assert inspect(stored).algorithm == writer
    # The reader's own setting plays no part: it is written on the payload.
    again = encode_user_data({"other": 1}, compress_threshold=0, algorithm=reader)
    assert decode_user_data(again) == {"other": 1}
    assert decode_user_data(data, blobs) == value


def test_zstd_writes_the_bare_frame_older_releases_read() -> None:
    data = encode_user_data(VALUE, compress_threshold=64, algorithm="zstd")
    assert data.inline is not None and data.inline[:4] == b"\x28\xb5\x2f\xfd"
    assert (
        bytes(cramjam.zstd.decompress(data.inline))
        == json.dumps(VALUE, separators=(",", ":"), sort_keys=True).encode()
    )


def test_data_written_by_the_zstd_only_release_still_reads() -> None:
    legacy = UserData(encoding="json_zstd", inline=LEGACY_USER_DATA)
    assert decode_user_data(legacy) == {"metadata": {"n": 1}, "result": "x" * 3000}
    state = fold(simulate_execution("exec_legacy", random.Random(7), tasks=3, payload_bytes=600))
    for reader in ALL:
        snapshot = codec_from_settings(algorithm=reader).decode(LEGACY_SNAPSHOT, "legacy")
        assert snapshot.header.compression == "zstd"
        assert snapshot.header.created_at == datetime(2026, 1, 1, tzinfo=UTC)
        assert snapshot.state == state


def test_min_size_leaves_small_values_uncompressed() -> None:
    for algorithm in ALL:
        small = encode_user_data({"a": 1}, compress_threshold=1024, algorithm=algorithm)
        assert small == UserData(encoding="json", inline=b'{"a":1}')


@pytest.mark.parametrize("algorithm", ALL)
def test_exclude_fields_stay_plain_outside_the_compressed_part(algorithm: Algorithm) -> None:
    data = encode_user_data(
        VALUE,
        compress_threshold=64,
        algorithm=algorithm,
        exclude_fields=("metadata", "small_values", "absent"),
    )
    assert data.inline is not None
    info = inspect(data.inline)
    assert info.algorithm == algorithm
    assert json.loads(info.prefix) == {"metadata": VALUE["metadata"], "small_values": [1, 2, 3]}
    assert b"results" not in info.prefix  # the rest is in the compressed part
    assert decode_user_data(data) == VALUE
    whole = len(json.dumps(VALUE, separators=(",", ":")))
    assert declared_size(data.inline) == whole + 1  # two objects: one more pair of braces
    # Below min_size once the excluded fields are out: nothing is compressed.
    tiny = {"metadata": "x" * 2000, "rest": 1}
    plain = encode_user_data(
        tiny, compress_threshold=64, algorithm=algorithm, exclude_fields=("metadata",)
    )
    assert plain.encoding == "json" and decode_user_data(plain) == tiny
    # Not a mapping: exclude_fields has nothing to keep out.
    listed = encode_user_data([VALUE], compress_threshold=64, exclude_fields=("metadata",))
    assert decode_user_data(listed) == [VALUE]


def test_levels_are_checked_per_algorithm() -> None:
    assert Compressor("zstd", 19).level == 19
    with pytest.raises(ValueError, match=r"not in 1\.\.9 for gzip"):
        Compressor("gzip", 12)
    assert Compressor("snappy", 12).level == 12  # no levels: nothing to check
    low = pack("gzip", json.dumps(VALUE).encode(), 1)
    high = pack("gzip", json.dumps(VALUE).encode(), 9)
    assert len(high) <= len(low)


# --- decompression bombs ------------------------------------------------------------

LIMIT = 1024 * 1024


def _bomb(algorithm: Algorithm, declared: int, blocks: int) -> bytes:
    """A tagged payload declaring ``declared`` bytes whose stream inflates to
    ``blocks`` MiB (frames of one zeroed MiB, concatenated)."""
    frame = bytes(getattr(cramjam, algorithm).compress(bytes(1024 * 1024)))
    body = frame * blocks
    return (
        TAG + bytes([1, ALL.index(algorithm) + 1]) + declared.to_bytes(4, "big") + bytes(4) + body
    )


@pytest.mark.parametrize("algorithm", ALL)
def test_a_bomb_declaring_more_than_the_limit_is_refused_unopened(algorithm: Algorithm) -> None:
    bomb = _bomb(algorithm, 2**32 - 1, 1)
    with pytest.raises(CompressionError, match="over the limit") as info:
        unpack(bomb, LIMIT)
    assert info.value.over_limit
    data = UserData(encoding="json_zstd", inline=bomb)
    with pytest.raises(UserDataError, match="over the limit"):
        decode_user_data(data, max_bytes=LIMIT)
    # The codec's check, before the fold: the record is not an event.
    problem = event_problem(_wrapped(data), InputLimits(max_user_data_bytes=LIMIT))
    assert problem is not None and "max_user_data_bytes" in problem


@pytest.mark.parametrize("algorithm", ALL)
def test_a_bomb_that_lies_about_its_size_stops_at_the_declared_size(algorithm: Algorithm) -> None:
    bomb = _bomb(algorithm, LIMIT, 64)  # claims 1 MiB, holds 64 MiB
    with pytest.raises(CompressionError, match="more than the declared"):
        unpack(bomb, LIMIT)
    with pytest.raises(UserDataError, match="more than the declared"):
        decode_user_data(UserData(encoding="json_zstd", inline=bomb), max_bytes=LIMIT)


def test_a_zstd_frame_claiming_little_but_followed_by_more_is_refused() -> None:
    small = bytes(cramjam.zstd.compress(b"[1]"))
    bomb = small + bytes(cramjam.zstd.compress(bytes(1024 * 1024))) * 8
    with pytest.raises(UserDataError, match="more than the declared"):
        decode_user_data(UserData(encoding="json_zstd", inline=bomb), max_bytes=LIMIT)


_CHILD = textwrap.dedent(
    """
    import resource, sys
    import cramjam
    from orchestrator.events.compression import TAG, ALGORITHMS, CompressionError, unpack
    algorithm = sys.argv[1]
    frame = bytes(getattr(cramjam, algorithm).compress(bytes(1024 * 1024)))
    limit = 16 * 1024 * 1024
    body = frame * 2048  # 2 GiB once inflated
    bomb = TAG + bytes([1, ALGORITHMS.index(algorithm) + 1])
    bomb += limit.to_bytes(4, "big") + bytes(4) + body
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        unpack(bomb, limit)
    except CompressionError as exc:
        print(exc.reason, file=sys.stderr)
    else:
        raise SystemExit("the bomb decoded")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) // 1024)
    """
)


@pytest.mark.parametrize("algorithm", ALL)
def test_a_two_gib_bomb_costs_no_more_memory_than_the_limit(algorithm: Algorithm) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, algorithm], capture_output=True, text=True, check=True
    )
    grown_mb = int(run.stdout.strip())
    print(f"{algorithm}: 2 GiB bomb, limit 16 MiB: peak RSS grew {grown_mb} MiB")
    assert grown_mb < 64, run.stderr
    assert "more than the declared" in run.stderr


def _wrapped(data: UserData) -> Any:
    from orchestrator.events import catalogue as c
    from orchestrator.events.envelope import Envelope

    return Envelope(
        execution_id="exec_bomb",
        pipeline_id="p",
        sequence=2,
        epoch=1,
        payload=c.ExecutionCompleted(outputs=data),
    )


def test_every_algorithm_round_trips_through_the_codec_value() -> None:
    raw = json.dumps(VALUE).encode()
    for algorithm in ALL:
        packer = Compressor(algorithm, 3, 64)
        assert packer.wants(raw) and not packer.wants(b"x" * 64)
        assert unpack(packer.pack(raw, b"{}"), len(raw) + 2) == (b"{}", raw)
    assert SnapshotCodec().compression is not None
