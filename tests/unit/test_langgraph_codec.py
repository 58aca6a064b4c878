"""How LangGraph threads map onto executions and how their values stay opaque."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip(
    "langgraph.checkpoint.serde.jsonplus",
    reason="LangGraph is an optional extra: pip install -e '.[langgraph]'",
)

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from orchestrator.langgraph import _codec as codec


def test_each_thread_and_namespace_is_its_own_execution_of_the_threads_pipeline() -> None:
    root = codec.execution_id("t1", "")
    child = codec.execution_id("t1", "child:1")
    assert root == codec.pipeline_id("t1") == "langgraph:t1"
    assert child.startswith("langgraph:t1~") and child != root
    assert "/" not in child  # one path segment of /executions/{execution_id}/...
    assert codec.execution_id("t1", "child:2") != child
    assert codec.product_checkpoint_id(root, "abc") == "langgraph:t1@abc"


def test_values_round_trip_through_langgraphs_serde_as_json_safe_text() -> None:
    serde = JsonPlusSerializer()
    value = {"bytes": b"\x00\xff", "n": 1, "nested": [None, 2.5, "x"]}
    packed = codec.pack(serde, value)
    assert json.loads(json.dumps(packed)) == packed
    assert codec.unpack(serde, packed) == value


def test_only_plain_json_metadata_is_filterable() -> None:
    md = {"source": "loop", "step": 2, "obj": object(), "nan": math.nan, "s": "a\u0000b"}
    assert codec.filterable(md) == {"source": "loop", "step": 2, "s": "ab"}
