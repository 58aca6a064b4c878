"""The history commands' argument handling and views, without services."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from orchestrator._cli.history import parse_when
from orchestrator.cli import app
from orchestrator.debug import ConsistencyReport, Mismatch
from orchestrator.debug.render import consistency_view, state_view
from orchestrator.events.fold import fold
from orchestrator.events.simulate import simulate_execution

NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - timedelta(hours=1)),
        ("30m", NOW - timedelta(minutes=30)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2d", NOW - timedelta(days=2)),
        ("45s", NOW - timedelta(seconds=45)),
        ("2024-01-15T10:00:00Z", datetime(2024, 1, 15, 10, tzinfo=UTC)),
        ("2024-01-15 10:00:00", datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ],
)
def test_since_and_until_accept_durations_and_times(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW) == expected


def test_a_bad_time_is_a_usage_error() -> None:
    with pytest.raises(typer.BadParameter, match=r"expected e\.g\. 1h"):
        parse_when("yesterday-ish", now=NOW)


def test_commands_refuse_conflicting_targets_and_missing_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()
    both = runner.invoke(app, ["replay", "exec_1", "--seq", "3", "--checkpoint", "c"])
    assert both.exit_code == 2 and "one of --seq, --at-time, --checkpoint" in both.output
    last = runner.invoke(app, ["replay", "exec_1", "--last", "5"])
    assert last.exit_code == 2 and "--last goes with --diff" in last.output
    no_db = runner.invoke(app, ["check"])
    assert no_db.exit_code == 2 and "DATABASE_URL" in no_db.output


@pytest.mark.parametrize(
    ("args", "new"),
    [
        (["replay", "exec_1", "--at", "3"], "--seq N (a sequence) or --at-time T (a time)"),
        (["replay", "exec_1", "--until", "1h"], "--at-time T"),
        (["fork", "exec_1", "--at", "3"], "--seq N"),
        (["snapshots", "restore", "exec_1", "--at", "1h"], "--seq N (a sequence) or --at-time"),
        (["snapshots", "restore", "exec_1", "--sequence", "3"], "--seq N"),
    ],
)
def test_an_old_point_option_is_refused_naming_the_new_one(args: list[str], new: str) -> None:
    # --at meant a sequence in replay/fork and a time in snapshots restore.
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"was renamed: use {new}" in " ".join(result.output.split())


def test_views_show_the_state_and_the_findings() -> None:
    state = fold(simulate_execution("exec_v", random.Random(2), tasks=3))
    assert state is not None
    console = Console(record=True, width=120)
    console.print(state_view(state))
    text = console.export_text()
    assert "exec_v" in text and state.status in text and "task_2" in text
    clean = ConsistencyReport(None, "archive", "read_models", 3, 40, (), (), (), (), ())
    bad = ConsistencyReport(
        "p", "archive", "read_models", 3, 40,
        (Mismatch("exec_v", "pipeline_states", None, "status", "failed", "completed"),),
        ("exec_lost",), (), (), (),
    )  # fmt: skip
    assert clean.consistent and not bad.consistent and bad.problems == 2
    console = Console(record=True, width=120)
    console.print(consistency_view(clean))
    console.print(consistency_view(bad))
    text = console.export_text()
    assert "consistent — all pipelines: 3 execution(s)" in text
    assert "INCONSISTENT: 2 problem(s)" in text and "mismatches of exec_v" in text
    assert '"failed"' in text and '"completed"' in text and "exec_lost" in text
