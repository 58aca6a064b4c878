"""LangGraph's published conformance suite against ``AsyncKafkaSaver`` on real Kafka,
PostgreSQL and S3: every base and extended capability must pass."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _databases import MakeDatabase
from _langgraph_support import open_saver, saver_spec

from orchestrator.devstack import ServiceEndpoints

pytest.importorskip(
    "langgraph.checkpoint.conformance",
    reason="LangGraph is an optional extra: pip install -e '.[langgraph]'",
)


async def test_conformance_suite_passes_every_capability(
    services: ServiceEndpoints,
    make_database: MakeDatabase,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from langgraph.checkpoint.conformance import checkpointer_test, validate

    spec = saver_spec(services, await make_database(migrated=False), tmp_path)
    async with open_saver(spec, node_id="conformance") as saver:
        await saver.setup()

        @checkpointer_test(name="AsyncKafkaSaver")
        async def factory() -> AsyncIterator[Any]:
            yield saver

        report = await validate(factory)
    with capsys.disabled():  # the report is printed in CI's log, passing or not
        report.print_report()
    failures = {
        name: result.failures for name, result in report.results.items() if not result.passed
    }
    assert report.passed_all(), failures
