"""The contract every ``SnapshotStore`` adapter passes (as eventsourcing's persistence tests).

Subclass :class:`SnapshotStoreContract` in a test module as ``Test<Adapter>`` and give it
a ``store`` fixture yielding an empty store (and ``lifecycle_supported``, the rules the
backend is expected to keep); every adapter then passes the same tests. Imported only by
tests: it needs pytest.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import pytest

from orchestrator.snapshots.errors import SnapshotNotFound
from orchestrator.snapshots.store import KeyLayout, Lifecycle, LifecycleReport, SnapshotStore


class SnapshotStoreContract:
    """Behaviour every snapshot store shares. Needs a ``store`` fixture (an empty store)."""

    async def test_put_then_get_returns_the_same_bytes(self, store: SnapshotStore) -> None:
        data = os.urandom(4096)
        await store.put("p/e/000000000100.snap", data)
        assert await store.get("p/e/000000000100.snap") == data

    async def test_an_empty_object_round_trips(self, store: SnapshotStore) -> None:
        await store.put("p/e/000000000001.snap", b"")
        assert await store.get("p/e/000000000001.snap") == b""

    async def test_a_large_object_round_trips(self, store: SnapshotStore) -> None:
        data = os.urandom(6 * 1024 * 1024)
        await store.put("p/big/000000000001.snap", data)
        assert await store.get("p/big/000000000001.snap") == data

    async def test_a_missing_object_is_snapshot_not_found(self, store: SnapshotStore) -> None:
        with pytest.raises(SnapshotNotFound) as info:
            await store.get("p/e/000000000404.snap")
        assert info.value.object_key == "p/e/000000000404.snap"

    async def test_put_replaces_the_object_under_the_same_key(self, store: SnapshotStore) -> None:
        await store.put("p/e/000000000100.snap", b"first")
        await store.put("p/e/000000000100.snap", b"second")
        assert await store.get("p/e/000000000100.snap") == b"second"
        assert await store.list("p/e/") == ["p/e/000000000100.snap"]

    async def test_delete_removes_and_ignores_missing_keys(self, store: SnapshotStore) -> None:
        await store.put("p/e/000000000001.snap", b"1")
        await store.put("p/e/000000000002.snap", b"2")
        await store.delete(["p/e/000000000001.snap", "p/e/000000000999.snap"])
        assert await store.list() == ["p/e/000000000002.snap"]
        with pytest.raises(SnapshotNotFound):
            await store.get("p/e/000000000001.snap")
        await store.delete([])

    async def test_list_is_sorted_and_filtered_by_prefix(self, store: SnapshotStore) -> None:
        keys = [
            "p/e2/000000000002.snap",
            "p/e1/000000000010.snap",
            "p/e1/000000000002.snap",
            "q/e1/000000000001.snap",
        ]
        for key in keys:
            await store.put(key, key.encode())
        assert await store.list() == sorted(keys)
        assert await store.list("p/e1/") == ["p/e1/000000000002.snap", "p/e1/000000000010.snap"]
        assert await store.list("nothing/") == []

    async def test_layout_keys_with_awkward_ids_round_trip(self, store: SnapshotStore) -> None:
        layout = KeyLayout(by_pipeline=True, by_date=True)
        created = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
        ids = ["exec/with/slashes", "../escape", "spaces and ünïcode", ".hidden", "a%2Fb"]
        keys = [layout.key("pipe line", eid, created, 7) for eid in ids]
        assert len(set(keys)) == len(keys)
        for key in keys:
            await store.put(key, key.encode())
        for eid, key in zip(ids, keys, strict=True):
            assert await store.get(key) == key.encode()
            prefix = layout.execution_prefix("pipe line", eid, created)
            assert await store.list(prefix) == [key]

    @pytest.mark.parametrize("key", ["", "/abs/x.snap", "a/../b.snap", "a//b.snap", "./a.snap"])
    async def test_keys_that_could_escape_the_root_are_refused(
        self, store: SnapshotStore, key: str
    ) -> None:
        with pytest.raises(ValueError, match="invalid snapshot key"):
            await store.put(key, b"x")

    async def test_concurrent_puts_all_land(self, store: SnapshotStore) -> None:
        keys = [f"p/e{i % 4}/{i:012d}.snap" for i in range(24)]
        await asyncio.gather(*(store.put(k, k.encode()) for k in keys))
        assert await store.list() == sorted(keys)

    async def test_uri_names_the_store_and_the_key(self, store: SnapshotStore) -> None:
        uri = store.uri("p/e/000000000001.snap")
        assert uri.endswith("p/e/000000000001.snap") and uri.startswith(store.name.split(":")[0])

    async def test_lifecycle_is_applied_or_reported(
        self, store: SnapshotStore, lifecycle_supported: tuple[str, ...]
    ) -> None:
        wanted = Lifecycle(transition_to_glacier=30, expiration=365)
        report = await store.apply_lifecycle(wanted)
        assert isinstance(report, LifecycleReport)
        assert sorted(report.applied + report.not_applied) == sorted(wanted.rules())
        assert report.applied == lifecycle_supported
        if report.not_applied:
            assert "NOT applied" in report.detail
        nothing = await store.apply_lifecycle(Lifecycle())
        assert nothing.complete and nothing.applied == ()
