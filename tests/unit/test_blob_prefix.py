"""Claim-checked blobs sit beside the snapshot prefix, outside any lifecycle rule on it."""

from __future__ import annotations

import pytest

from orchestrator.snapshots.store import BLOBS, blob_prefix, lifecycle_covers_blobs


@pytest.mark.parametrize(
    ("snapshots", "blobs"),
    [("states/", ""), ("states", ""), ("team/states/", "team/"), ("a/b/c", "a/b/")],
)
def test_blob_keys_are_outside_the_snapshot_prefix(snapshots: str, blobs: str) -> None:
    assert blob_prefix(snapshots) == blobs
    assert not lifecycle_covers_blobs(snapshots)
    assert not (blobs + BLOBS + "ab/ab").startswith(snapshots.strip("/") + "/")


@pytest.mark.parametrize("snapshots", ["", "/", "blobs/", "team/blobs"])
def test_a_prefix_whose_rule_would_cover_the_blobs_is_recognised(snapshots: str) -> None:
    assert lifecycle_covers_blobs(snapshots)
