"""One trace from the caller through the writer, the processor and the query API.

The test process installs an OpenTelemetry SDK provider with the in-memory exporter;
nothing else is configured: the writer puts the trace context in each record's
``traceparent`` header, the real processor (Kafka → PostgreSQL) continues that trace
when it applies the records, and the API continues the caller's trace and returns the
last applied write's ``traceparent``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from _api_support import running
from _state_stack import state_stack
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.commands import CreateExecution, StartValidation
from orchestrator.events import tracing
from orchestrator.projections.api import ApiSettings, create_app
from tests.otel import installed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_spans_writer_processor_and_api(kafka: Any, postgres: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    execution_id = f"exec_{uuid.uuid4().hex[:10]}"
    with installed(provider):
        async with state_stack(kafka, postgres) as stack:
            with tracing.span("caller") as caller:
                assert caller is not None
                caller_tp = tracing.current_traceparent()
                writer = await stack.runtime.create_execution(
                    CreateExecution(execution_id=execution_id, pipeline_id="p", tasks=("t",))
                )
                last = await writer.execute(StartValidation())
            await stack.runtime.read_model.wait_for(last, 30)
            for _ in range(500):  # the apply spans end right after the batch commits
                applied = _named(list(exporter.get_finished_spans()), "orchestrator.apply")
                if {s.attributes["sequence"] for s in applied} >= {1, 2}:  # type: ignore[index]
                    break
                await asyncio.sleep(0.02)
            app = create_app(ApiSettings(database_url=stack.dsn, projection=stack.projection.name))
            async with running(app) as client:
                response = await client.get(
                    f"/executions/{execution_id}", headers={"traceparent": caller_tp or ""}
                )
    assert response.status_code == 200, response.text
    spans = list(exporter.get_finished_spans())
    trace_id = caller.get_span_context().trace_id

    appends = _named(spans, "orchestrator.append")
    decides = _named(spans, "orchestrator.decide")
    applies = _named(spans, "orchestrator.apply")
    requests = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert len(appends) == 2 and len(decides) == 2
    assert {s.context.trace_id for s in appends + decides + applies + requests} == {trace_id}
    assert [(a.attributes or {}).get("first_sequence") for a in appends] == [1, 2]
    assert all((a.attributes or {}).get("execution_id") == execution_id for a in appends)

    # Each applied record's span is a child of the append that wrote it.
    by_span_id = {a.context.span_id: a for a in appends}
    seen = {}
    for span in applies:
        attrs = span.attributes or {}
        assert attrs["execution_id"] == execution_id
        assert span.parent is not None
        parent = by_span_id[span.parent.span_id]
        assert (parent.attributes or {})["first_sequence"] == attrs["sequence"]
        assert span.links, "an apply span links to its fold_batch span"
        seen[attrs["sequence"]] = span
    assert set(seen) == {1, 2}
    batches = {s.context.span_id for s in _named(spans, "orchestrator.fold_batch")}
    assert {link.context.span_id for s in applies for link in s.links} <= batches

    # The API continued the caller's trace and names the last write applied.
    [request] = requests
    assert request.parent is not None
    assert request.parent.span_id == caller.get_span_context().span_id
    assert (request.attributes or {})["http.route"] == "/executions/{execution_id}"
    in_request = [
        s for s in spans if s.context.trace_id == trace_id and s.start_time >= request.start_time
    ]
    assert any((s.attributes or {}).get("execution_id") == execution_id for s in in_request)
    second = appends[1].context
    assert response.headers["traceparent"].startswith(
        f"00-{second.trace_id:032x}-{second.span_id:016x}-"
    )
