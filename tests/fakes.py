"""Small in-memory stand-ins for the unit tests (no I/O)."""

from __future__ import annotations


class DictBlobStore:
    """A ``BlobStore`` in a dict whose stored bytes a test can inspect (``objects``, by key)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_blob(self, key: str, data: bytes) -> str:
        self.objects[key] = data
        return f"mem://{key}"

    def get_blob(self, uri: str) -> bytes:
        return self.objects[uri.removeprefix("mem://")]
