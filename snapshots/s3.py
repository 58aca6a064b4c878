"""Snapshots as S3 objects (the seed's "S3 Backend"); boto3 runs in worker threads.

An S3 PUT is atomic, so a reader sees an old object or the new one. Server-side
encryption is passed through as configured (``ServerSideEncryption``, and
``SSEKMSKeyId`` for ``aws:kms``, the seed's ``encryption.kms_key``). The seed's
``lifecycle`` block becomes one bucket lifecycle rule over the store's prefix where
the server accepts it; where it does not, :meth:`S3SnapshotStore.apply_lifecycle`
says so (returned and logged) instead of pretending.

boto3 and botocore errors are translated here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.snapshots.errors import SnapshotConfigError, SnapshotNotFound, SnapshotStoreError
from orchestrator.snapshots.store import (
    BLOBS,
    Lifecycle,
    LifecycleReport,
    blob_prefix,
    check_key,
    lifecycle_covers_blobs,
    sse_arguments,
)

logger = logging.getLogger(__name__)

_RETRIABLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000
RULE_ID = "orchestrator-snapshots"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def make_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Any:
    """A boto3 S3 client (path-style when an endpoint is given, as S3-compatible stores
    expect; checksums only when an operation requires them, which they all accept)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path"} if endpoint_url else {},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class S3SnapshotStore:
    """Objects in ``bucket`` under ``prefix``; keys are relative to the prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        server_side_encryption: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        if not bucket:
            raise SnapshotConfigError("s3.bucket", "must not be empty")
        if kms_key_id and server_side_encryption not in (None, "aws:kms", "aws:kms:dsse"):
            raise SnapshotConfigError(
                "s3.encryption.kms_key", f"needs aws:kms encryption, not {server_side_encryption}"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client or make_client(endpoint_url=endpoint_url, region=region)
        self._sse = sse_arguments(server_side_encryption, kms_key_id)

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def put_arguments(self) -> dict[str, str]:
        """The server-side encryption arguments every PUT carries (empty when off)."""
        return dict(self._sse)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _error(self, operation: str, key: str, exc: Exception) -> SnapshotStoreError:
        if isinstance(exc, ClientError):
            code, status = _code(exc), _status(exc)
            retriable = code in _RETRIABLE_CODES or status >= 500
            reason = f"{code or status}: {exc}"
        else:
            retriable, reason = True, str(exc)
        return SnapshotStoreError(self.name, operation, key, reason, retriable=retriable)

    async def put(self, key: str, data: bytes) -> None:
        full = self.prefix + check_key(key)
        try:
            await asyncio.to_thread(
                self._client.put_object,
                Bucket=self.bucket,
                Key=full,
                Body=bytes(data),
                ContentType="application/vnd.orchestrator.snapshot",
                **self._sse,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("put", key, exc) from exc

    async def get(self, key: str) -> bytes:
        full = self.prefix + check_key(key)

        def read() -> bytes:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            body: bytes = response["Body"].read()
            return body

        try:
            return await asyncio.to_thread(read)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                raise SnapshotNotFound(self.name, key) from None
            raise self._error("get", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("get", key, exc) from exc

    async def delete(self, keys: Iterable[str]) -> None:
        full = [self.prefix + check_key(key) for key in keys]
        for start in range(0, len(full), _DELETE_BATCH):
            batch = full[start : start + _DELETE_BATCH]
            try:
                response = await asyncio.to_thread(
                    self._client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._error("delete", batch[0], exc) from exc
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                raise SnapshotStoreError(
                    self.name,
                    "delete",
                    str(first.get("Key")),
                    f"{first.get('Code')}: {first.get('Message')} ({len(errors)} failed)",
                    retriable=True,
                )

    async def list(self, prefix: str = "") -> list[str]:
        def walk() -> list[str]:
            keys: list[str] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
            return sorted(keys)

        try:
            return await asyncio.to_thread(walk)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("list", prefix, exc) from exc

    def lifecycle_rule(self, lifecycle: Lifecycle) -> dict[str, Any]:
        """The bucket lifecycle rule the seed's ``lifecycle`` block describes: over the
        snapshot prefix only (blobs live beside it, see :func:`blob_prefix`)."""
        rule: dict[str, Any] = {
            "ID": RULE_ID,
            "Filter": {"Prefix": self.prefix},
            "Status": "Enabled",
        }
        if lifecycle.transition_to_glacier is not None:
            rule["Transitions"] = [
                {"Days": lifecycle.transition_to_glacier, "StorageClass": "GLACIER"}
            ]
        if lifecycle.expiration is not None:
            rule["Expiration"] = {"Days": lifecycle.expiration}
        return rule

    async def apply_lifecycle(self, lifecycle: Lifecycle) -> LifecycleReport:
        """Install the rule (replacing only our own rule id) and read it back.

        A server that refuses the full rule is offered the expiration alone (S3-compatible
        stores often expire objects but have no Glacier); whatever is not in force
        afterwards is listed in ``not_applied`` and logged as a warning.
        """
        if lifecycle.empty:
            return LifecycleReport(self.name, (), (), "no lifecycle rules configured")
        if lifecycle_covers_blobs(self.prefix):
            detail = (
                f"lifecycle rules NOT applied: a rule over {self.name} would also expire the "
                f"claim-checked blobs under s3://{self.bucket}/{blob_prefix(self.prefix)}{BLOBS}"
                " that live events reference; give the snapshots a prefix of their own "
                "(e.g. states/)"
            )
            logger.warning("%s: %s", self.name, detail)
            return LifecycleReport(self.name, (), lifecycle.rules(), detail)
        attempts = [lifecycle]
        if lifecycle.transition_to_glacier is not None and lifecycle.expiration is not None:
            attempts.append(Lifecycle(expiration=lifecycle.expiration))
        refusals: list[str] = []
        for attempt in attempts:
            try:
                problem = await asyncio.to_thread(self._install_rule, self.lifecycle_rule(attempt))
            except (ClientError, BotoCoreError) as exc:
                code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                problem = f"{code}: {exc}"
            if problem is not None:
                refusals.append(f"{', '.join(attempt.rules())} refused ({problem})")
                continue
            missing = tuple(r for r in lifecycle.rules() if r not in attempt.rules())
            detail = f"lifecycle rule {RULE_ID!r} installed: {', '.join(attempt.rules())}"
            if missing:
                detail += f"; NOT applied: {', '.join(missing)} ({'; '.join(refusals)})"
                logger.warning("%s: %s", self.name, detail)
            return LifecycleReport(self.name, attempt.rules(), missing, detail)
        detail = (
            f"lifecycle rules NOT applied ({'; '.join(refusals)}); "
            "run `orchestrator-state snapshots prune` for retention"
        )
        logger.warning("%s: %s", self.name, detail)
        return LifecycleReport(self.name, (), lifecycle.rules(), detail)

    def _install_rule(self, rule: dict[str, Any]) -> str | None:
        """Put our rule next to the bucket's other rules; what is wrong if it did not stick."""
        others: list[dict[str, Any]] = []
        try:
            current = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
            others = [r for r in current.get("Rules", []) if r.get("ID") != RULE_ID]
        except ClientError as exc:
            if _code(exc) not in ("NoSuchLifecycleConfiguration", "404", "NotFound"):
                raise
        self._client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket, LifecycleConfiguration={"Rules": [*others, rule]}
        )
        kept = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        mine = [r for r in kept.get("Rules", []) if r.get("ID") == RULE_ID]
        for part in ("Transitions", "Expiration"):
            if part in rule and (not mine or mine[0].get(part) != rule[part]):
                return f"the server accepted {part} but reads back {mine or 'no rule'}"
        return None
