"""The filesystem blob store as blob retention sees it: listed a page at a time, only
content addresses are candidates, re-checked and deleted by key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.snapshots import BlobListing, StoredBlob
from orchestrator.state.blobs import FilesystemBlobStore


def _put(store: FilesystemBlobStore, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    store.put_blob(f"blobs/{digest[:2]}/{digest}", data)
    return digest


def test_listing_pages_and_deleting(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, fsync=False)
    assert isinstance(store, BlobListing)
    assert list(store.list_blobs()) == []  # no blobs folder yet
    digests = {_put(store, f"value {n}".encode()) for n in range(5)}
    (tmp_path / "blobs" / "zz").mkdir()
    (tmp_path / "blobs" / "zz" / "notes.txt").write_text("not ours")
    pages = list(store.list_blobs(page_size=2))
    assert all(len(p) <= 2 for p in pages)
    listed = [b for p in pages for b in p]
    assert {b.sha256 for b in listed} == digests | {None}
    first = next(b for b in listed if b.sha256 is not None)
    assert first.size == len(b"value 0") and first.modified <= datetime.now(UTC)
    assert store.blob_modified(first.key) is not None
    store.delete_blobs([first.key])
    assert store.blob_modified(first.key) is None
    assert len([b for p in store.list_blobs() for b in p]) == len(listed) - 1


def test_only_content_addresses_are_candidates() -> None:
    now = datetime.now(UTC)
    digest = "ab" + "0" * 62
    assert StoredBlob(f"root/blobs/ab/{digest}", now, 1).sha256 == digest
    assert StoredBlob(f"blobs/cd/{digest}", now, 1).sha256 is None  # wrong shard
    assert StoredBlob("blobs/ab/abc", now, 1).sha256 is None
    assert StoredBlob(f"states/ab/{digest}", now, 1).sha256 is None
