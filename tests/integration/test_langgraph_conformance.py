"""LangGraph's published conformance suite against ``AsyncKafkaSaver`` on real Kafka,
PostgreSQL and S3: every base and extended capability must pass."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from _langgraph_support import MakeSaverSpec, open_saver

pytest.importorskip(
    "langgraph.checkpoint.conformance",
    reason="LangGraph is an optional extra: pip install -e '.[langgraph]'",
)


async def test_conformance_suite_passes_every_capability(
    make_saver_spec: MakeSaverSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph.checkpoint.conformance import checkpointer_test, validate

    async with open_saver(await make_saver_spec(), node_id="conformance") as saver:
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
