"""Sealing user data: compress then encrypt, opaque to the fold, erased when its key is."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from orchestrator.events import catalogue as c
from orchestrator.events.crypto import (
    Sealer,
    UserDataErased,
    is_sealed,
    marker_scope,
    new_data_key,
    unwrap_key,
    wrap_key,
)
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import UserDataError
from orchestrator.events.fold import step
from orchestrator.events.keys import KeyRing, generate_key
from orchestrator.events.userdata import (
    UserData,
    decode_user_data,
    encode_user_data,
    resolve_blob_markers,
)
from tests.fakes import DictBlobStore

SECRET = "tangerine-quokka-7731"


def _keys(found: dict[str, bytes], erased: frozenset[str] = frozenset()) -> Any:
    def get(scope: str) -> bytes:
        if scope in erased:
            raise UserDataErased(scope)
        return found[scope]

    return get


@pytest.mark.parametrize("size", [10, 5_000])  # inline plain JSON, and zstd-compressed
def test_sealed_values_hold_no_plaintext_and_open_with_their_key(size: int) -> None:
    key = new_data_key()
    value = {"secret": SECRET, "pad": "x" * size}
    data = encode_user_data(value, sealer=Sealer("exec-1", key))
    assert data.inline is not None and is_sealed(data.inline)
    assert SECRET.encode() not in data.inline
    assert decode_user_data(data, keys=_keys({"exec-1": key})) == value
    marker = decode_user_data(data)  # what the fold keeps: opaque
    assert SECRET not in json.dumps(marker) and marker_scope(marker) == "exec-1"
    assert resolve_blob_markers(marker, None, keys=_keys({"exec-1": key})) == value
    with pytest.raises(UserDataErased):
        resolve_blob_markers(marker, None, keys=_keys({}, frozenset({"exec-1"})))


def test_claim_checked_blobs_are_sealed_too() -> None:
    key, blobs = new_data_key(), DictBlobStore()
    value = {"secret": SECRET, "pad": "y" * 5000}
    data = encode_user_data(
        value, blob_store=blobs, sealer=Sealer("exec-1", key), claim_check_threshold=64
    )
    assert data.ref is not None
    assert all(SECRET.encode() not in body for body in blobs.objects.values())
    assert decode_user_data(data, blobs, keys=_keys({"exec-1": key})) == value
    with pytest.raises(UserDataErased):
        decode_user_data(data, blobs, keys=_keys({}, frozenset({"exec-1"})))


def test_plain_data_still_reads_with_keys_and_sealed_needs_them() -> None:
    plain = encode_user_data({"a": 1})
    assert decode_user_data(plain, keys=_keys({})) == {"a": 1}
    sealed = encode_user_data({"a": 1}, sealer=Sealer("e", new_data_key()))
    with pytest.raises(UserDataError, match="no data keys"):
        resolve_blob_markers(decode_user_data(sealed), None)


def test_sealed_bytes_cannot_move_to_another_execution() -> None:
    key = new_data_key()
    data = encode_user_data({"a": 1}, sealer=Sealer("exec-1", key))
    assert data.inline is not None
    moved = UserData(encoding=data.encoding, inline=data.inline.replace(b"exec-1", b"exec-2"))
    with pytest.raises(UserDataError, match="authentication"):
        decode_user_data(moved, keys=_keys({"exec-2": key}))


def test_data_keys_wrap_under_the_active_master_key_and_rotate() -> None:
    old = KeyRing.parse(f"m1:{generate_key()}")
    dek = new_data_key()
    kid, wrapped = wrap_key(old, "exec-1", dek)
    assert kid == "m1" and dek not in wrapped
    rotated = KeyRing({**old.keys, "m2": base64.b64decode(generate_key())}, "m2")
    assert unwrap_key(rotated, kid, wrapped, "exec-1") == dek
    assert wrap_key(rotated, "exec-1", dek)[0] == "m2"
    with pytest.raises(UserDataError, match="'m1'"):
        unwrap_key(KeyRing.parse(f"m2:{generate_key()}"), kid, wrapped, "exec-1")
    with pytest.raises(UserDataError, match="authentication"):
        unwrap_key(old, kid, wrapped, "exec-2")  # bound to its scope


def test_the_fold_applies_sealed_events_without_keys() -> None:
    sealer = Sealer("exec-1", new_data_key())
    created = Envelope(
        payload=c.ExecutionCreated(
            pipeline_id="p",
            context=c.ExecutionContext(input_data=encode_user_data({"q": SECRET}, sealer=sealer)),
            tasks=(c.TaskSpec(task_id="t"),),
        ),
        execution_id="exec-1",
        pipeline_id="p",
        sequence=1,
        epoch=1,
    )
    result = step(None, created)
    assert result.applied
    assert SECRET not in json.dumps(dict(result.state.context))
