"""Blob stores for claim-checked user data: the local filesystem and S3.

User data above the claim-check threshold (checkpoint data, large task outputs) is
kept here and the event carries only ``{uri, sha256, size}``; reading it back checks
the sha256 (``events.userdata.fetch_verified``). Keys are content addresses
(``blobs/<2 hex>/<sha256>``), so writing the same bytes twice is harmless.

The ``BlobStore`` port is synchronous: callers on the event loop run it through
``asyncio.to_thread`` (``commands.ports.encode_value`` does). Only this module knows
boto3; a missing object or an unreadable file becomes ``UserDataError``. Blob
retention (``snapshots.blobretention``) lists, re-checks and deletes through
``list_blobs`` / ``blob_modified`` / ``delete_blobs``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.events import UserDataError, replacing
from orchestrator.snapshots import StoredBlob, sse_arguments


class FilesystemBlobStore:
    """Blobs as files under ``root``, written atomically (temp file, fsync, rename)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise UserDataError(f"blob key {key!r} escapes the store root {self.root}")
        return path

    def put_blob(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, fsync=self.fsync) as f:
            f.write(data)
        return path.as_uri()

    def list_blobs(self, page_size: int = 1000) -> Iterator[list[StoredBlob]]:
        """Every file under ``blobs/``, one directory read at a time."""
        page: list[StoredBlob] = []
        top = self.root / "blobs"
        if not top.is_dir():
            return
        with os.scandir(top) as shards:
            dirs = sorted(e.name for e in shards if e.is_dir(follow_symlinks=False))
        for shard in dirs:
            with os.scandir(top / shard) as entries:
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    page.append(
                        StoredBlob(
                            f"blobs/{shard}/{entry.name}",
                            datetime.fromtimestamp(st.st_mtime, UTC),
                            st.st_size,
                        )
                    )
                    if len(page) >= page_size:
                        yield page
                        page = []
        if page:
            yield page

    def blob_modified(self, key: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(self._path(key).stat().st_mtime, UTC)
        except FileNotFoundError:
            return None

    def delete_blobs(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def get_blob(self, uri: str) -> bytes:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise UserDataError(f"blob {uri} is not a file:// URI (this store is {self.root})")
        path = Path(parts.path).resolve()
        if not path.is_relative_to(self.root):
            raise UserDataError(f"blob {uri} is outside the store root {self.root}")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UserDataError(f"blob {uri} cannot be read: {exc}") from exc


@dataclass(eq=False)
class S3BlobStore:
    """Blobs as objects under ``s3://bucket/prefix``; ``client`` is a boto3 S3 client.

    ``server_side_encryption`` / ``kms_key_id`` (the S3 backend's ``encryption`` block)
    go on every put, as for snapshots."""

    client: Any
    bucket: str
    prefix: str = ""
    _: KW_ONLY
    server_side_encryption: str | None = None
    kms_key_id: str | None = None

    def __post_init__(self) -> None:
        self._sse = sse_arguments(self.server_side_encryption, self.kms_key_id)

    @classmethod
    def from_endpoint(
        cls,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> S3BlobStore:
        """A store with its own boto3 client (credentials from arguments or the env)."""
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )
        return cls(client, bucket, prefix)

    def put_blob(self, key: str, data: bytes) -> str:
        name = self.prefix + key
        try:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data, **self._sse)
        except Exception as exc:  # botocore's ClientError / connection errors
            raise UserDataError(f"cannot store blob s3://{self.bucket}/{name}: {exc}") from exc
        return f"s3://{self.bucket}/{name}"

    def list_blobs(self, page_size: int = 1000) -> Iterator[list[StoredBlob]]:
        """Every object under ``<prefix>blobs/``, one ``list_objects_v2`` page at a time."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix + "blobs/",
            PaginationConfig={"PageSize": min(page_size, 1000)},
        )
        for response in pages:
            contents = response.get("Contents", [])
            if contents:
                yield [StoredBlob(o["Key"], o["LastModified"], o["Size"]) for o in contents]

    def blob_modified(self, key: str) -> datetime | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # botocore's ClientError: 404 means gone
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise UserDataError(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc
        modified: datetime = head["LastModified"]
        return modified

    def delete_blobs(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise UserDataError(
                    f"cannot delete {len(errors)} blob(s) from s3://{self.bucket}, e.g."
                    f" {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    def get_blob(self, uri: str) -> bytes:
        parts = urlsplit(uri)
        if parts.scheme != "s3":
            raise UserDataError(f"blob {uri} is not an s3:// URI")
        try:
            response = self.client.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))
            body: bytes = response["Body"].read()
        except Exception as exc:  # NoSuchKey, access denied, connection errors
            raise UserDataError(f"blob {uri} cannot be read: {exc}") from exc
        return body


class MemoryBlobStore:
    """Blobs in a dict (the memory backend without persistence): ``memory://blobs/<key>``."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put_blob(self, key: str, data: bytes) -> str:
        uri = f"memory://blobs/{key}"
        self._blobs[uri] = bytes(data)
        return uri

    def get_blob(self, uri: str) -> bytes:
        try:
            return self._blobs[uri]
        except KeyError:
            raise UserDataError(f"blob {uri} is not in this process's memory") from None
