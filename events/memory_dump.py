"""Dump the memory backend's log to a file, and read it back.

The file holds the log, not derived state: every record's topic, partition, offset, key
and encoded bytes, so a reload re-folds it with the one fold (any state derived from it
is rebuilt, exactly as from Kafka). It is written atomically (a temporary file in the
same folder, fsynced, then renamed over the old one), so a crash mid-dump leaves the
previous dump intact. Layout: ``MAGIC`` then, per record, a fixed header
(``>HIQiI``: topic length, partition, offset, key length or -1, value length) and the
topic, key and value bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from orchestrator.events.envelope import Position
from orchestrator.events.errors import LogError
from orchestrator.events.files import replacing
from orchestrator.events.memory import MemoryRecord

MAGIC = b"ORCHESTRATOR-STATE-MEMORY-LOG 1\n"
_HEADER = struct.Struct(">HIQiI")


def write_dump(path: str | os.PathLike[str], records: Iterable[MemoryRecord]) -> int:
    """Write ``records`` to ``path`` atomically; the number of bytes written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with replacing(target) as out:
        out.write(MAGIC)
        size += len(MAGIC)
        for record in records:
            p, topic = record.position, record.position.topic.encode()
            key = record.key
            head = _HEADER.pack(
                len(topic), p.partition, p.offset, -1 if key is None else len(key),
                len(record.value),
            )  # fmt: skip
            for part in (head, topic, key or b"", record.value):
                out.write(part)
                size += len(part)
    _fsync_dir(target.parent)
    return size


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_dump(path: str | os.PathLike[str]) -> Iterator[MemoryRecord]:
    """The records of a dump, in the order written (``LogError`` if it is not one)."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise LogError(f"{path}: not a memory backend dump", retriable=False)
    at, end = len(MAGIC), len(data)
    while at < end:
        if at + _HEADER.size > end:
            raise LogError(f"{path}: truncated at byte {at}", retriable=False)
        topic_len, partition, offset, key_len, value_len = _HEADER.unpack_from(data, at)
        at += _HEADER.size
        body = topic_len + max(key_len, 0) + value_len
        if at + body > end:
            raise LogError(f"{path}: truncated at byte {at}", retriable=False)
        topic = data[at : at + topic_len].decode()
        at += topic_len
        key = None if key_len < 0 else data[at : at + key_len]
        at += max(key_len, 0)
        value = data[at : at + value_len]
        at += value_len
        yield MemoryRecord(Position(topic, partition, offset), key, value)
