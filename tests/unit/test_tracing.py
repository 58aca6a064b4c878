"""Tracing is off by default: no SDK, no header, no span; on, the context round-trips."""

from __future__ import annotations

import random

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.events import ArchivedEvent, MemoryEventArchive, tracing
from orchestrator.events.envelope import Position
from orchestrator.events.fold import fold
from orchestrator.events.simulate import simulate_execution
from orchestrator.snapshots import snapshot_history
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.index import MemorySnapshotIndex
from orchestrator.snapshots.store import MemorySnapshotStore
from orchestrator.snapshots.writer import PendingSnapshot, SnapshotWriter
from tests.otel import installed


def test_without_an_sdk_nothing_is_traced_and_no_header_is_added() -> None:
    assert not tracing.enabled()
    with tracing.span("orchestrator.append", execution_id="e1") as span:
        assert span is None
        assert tracing.headers() is None
        assert tracing.current_traceparent() is None


def test_with_an_sdk_headers_carry_the_current_span_and_extract_continues_it() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with installed(provider):
        assert tracing.enabled()
        with tracing.span("caller", execution_id="e1", sequence=None) as outer:
            assert outer is not None
            found = tracing.headers()
        assert found is not None
        traceparent = tracing.traceparent_of(found)
        ctx = outer.get_span_context()
        assert traceparent is not None
        assert traceparent.startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
        with tracing.span("child", parent=tracing.context_of(traceparent)):
            pass
    caller, child = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    assert child.context.trace_id == caller.context.trace_id
    assert child.parent is not None and child.parent.span_id == caller.context.span_id
    assert dict(caller.attributes or {}) == {"execution_id": "e1"}
    assert not tracing.enabled()


def test_configure_from_env_is_a_no_op_without_the_otel_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.configure_from_env() is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.configure_from_env() is False
    assert not tracing.enabled()


def test_a_garbled_traceparent_header_is_ignored() -> None:
    assert tracing.traceparent_of([("traceparent", b"\xff\xfe")]) is None
    assert tracing.traceparent_of([("other", b"x")]) is None
    assert not trace.get_current_span(tracing.context_of("garbage")).get_span_context().is_valid


async def test_snapshot_write_continues_the_records_trace_and_restore_has_a_span() -> None:
    events = simulate_execution("exec_t", random.Random(3), tasks=2)
    log = [ArchivedEvent(Position("t", 0, i), e) for i, e in enumerate(events)]
    state = fold(events)
    assert state is not None
    store, index = MemorySnapshotStore(), MemorySnapshotIndex()
    writer = SnapshotWriter(store, SnapshotCodec())
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with installed(provider):
        with tracing.span("append") as append:
            assert append is not None
            traceparent = tracing.current_traceparent()
        pending = PendingSnapshot(state, log[-1].position, events[-1].occurred_at)
        await index.add(await writer.write_many([pending], {log[-1].position: traceparent or ""}))
        restorer = snapshot_history(
            store=store, index=index, archive=MemoryEventArchive(log), codec=writer.codec
        )
        await restorer.latest("exec_t")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    written = spans["orchestrator.snapshot_write"]
    assert written.parent is not None
    assert written.parent.span_id == append.get_span_context().span_id
    assert dict(written.attributes or {}) == {
        "execution_id": "exec_t",
        "sequence": state.last_sequence,
    }
    restored = spans["orchestrator.restore"].attributes or {}
    assert restored["execution_id"] == "exec_t"
    assert restored["sequence"] == state.last_sequence
