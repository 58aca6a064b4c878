"""Snapshots as files under a base path (the seed's "File System Backend").

A write goes to a temporary file in the target folder, is fsynced, renamed over the
final name, and the folder is fsynced: after a crash the key holds the old object or
the new one, never a torn file. Temporary files left by a crash start with ``.`` and
are never listed; the next write of the same key replaces the object anyway.

``file_format`` (the backend's ``config.format``: ``raw``, ``json`` or ``msgpack``)
decides how each file lays its object out (``snapshots._fileformat``); every file
says which layout it is in, so any store reads any file.
"""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from orchestrator.snapshots._fileformat import FILE_FORMATS, FileFormat, unwrap, wrap
from orchestrator.snapshots.errors import SnapshotConfigError, SnapshotNotFound, SnapshotStoreError
from orchestrator.snapshots.store import (
    Lifecycle,
    LifecycleReport,
    check_key,
    unsupported_lifecycle,
)

_TRANSIENT = {errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ENOSPC, errno.EIO}


class FilesystemSnapshotStore:
    """Objects as files under ``base_path``; keys are relative paths."""

    def __init__(self, base_path: str | os.PathLike[str], file_format: FileFormat = "raw") -> None:
        if file_format not in FILE_FORMATS:
            raise SnapshotConfigError(
                "state_management.config.format",
                f"{file_format!r} is not one of json, msgpack (pickle would run code on load)",
            )
        self.base_path = Path(base_path)
        self.file_format = file_format

    @property
    def name(self) -> str:
        return self.base_path.resolve().as_uri()

    def uri(self, key: str) -> str:
        return (self.base_path.resolve() / key).as_uri()

    def _path(self, key: str) -> Path:
        return self.base_path / check_key(key)

    def _error(self, operation: str, key: str, exc: OSError) -> SnapshotStoreError:
        return SnapshotStoreError(
            self.name, operation, key, str(exc), retriable=exc.errno in _TRANSIENT
        )

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        content = wrap(data, self.file_format)
        try:
            await asyncio.to_thread(_atomic_write, path, content)
        except OSError as exc:
            raise self._error("put", key, exc) from exc

    async def version(self, key: str) -> str | None:
        """The object's version without reading it (inode, size, modification time; a
        put replaces the file, so each put makes another), ``None`` if it cannot tell."""
        try:
            st = os.stat(self._path(key))
        except OSError:
            return None
        return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise SnapshotNotFound(self.name, key) from None
        except OSError as exc:
            raise self._error("get", key, exc) from exc
        return unwrap(content, key)

    async def delete(self, keys: Iterable[str]) -> None:
        paths = [(key, self._path(key)) for key in keys]

        def remove() -> None:
            for key, path in paths:
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise self._error("delete", key, exc) from exc

        await asyncio.to_thread(remove)

    async def list(self, prefix: str = "") -> list[str]:
        def walk() -> list[str]:
            found: list[str] = []
            if not self.base_path.exists():
                return found
            for root, dirs, files in os.walk(self.base_path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = Path(root).relative_to(self.base_path).as_posix()
                for filename in files:
                    if filename.startswith("."):
                        continue
                    key = filename if rel == "." else f"{rel}/{filename}"
                    if key.startswith(prefix):
                        found.append(key)
            return sorted(found)

        return await asyncio.to_thread(walk)

    async def apply_lifecycle(self, lifecycle: Lifecycle) -> LifecycleReport:
        return unsupported_lifecycle(self.name, lifecycle)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    """``mkdir -p`` that also fsyncs the parent of each folder it creates."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        _fsync_dir(folder.parent)


def _atomic_write(path: Path, data: bytes) -> None:
    _make_dirs(path.parent)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
