"""The S3 backend's ``encryption`` block reaches claim-checked blobs, as it does snapshots."""

from __future__ import annotations

import pytest

from orchestrator.app import blob_store, plan_app
from orchestrator.config import load_config
from orchestrator.devstack import ServiceEndpoints
from orchestrator.state.blobs import S3BlobStore


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "enabled: true\n      kms_key: alias/orchestrator\n",
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/orchestrator"},
        ),
        ("enabled: true\n", {"ServerSideEncryption": "aws:kms"}),
        ("enabled: false\n", {}),
    ],
)
def test_blob_puts_carry_the_s3_encryption_block(block: str, expected: dict[str, str]) -> None:
    text = (
        "state_management:\n  backend: s3\n  config:\n    bucket: b\n"
        f"    endpoint_url: http://s3.invalid:9000\n    encryption:\n      {block}"
    )
    settings = load_config(text, "<test>").settings
    plan = plan_app(settings, bootstrap="kafka:9092", dsn="postgresql://db/x", node_id="n1")
    store = blob_store(plan, ServiceEndpoints())
    assert isinstance(store, S3BlobStore)
    assert store._sse == expected
