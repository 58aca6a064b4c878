"""``orchestrator-state api``: its defaults and its errors, without serving anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app


def test_the_api_binds_to_loopback_by_default() -> None:
    result = CliRunner().invoke(app, ["api", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output
    assert "DATABASE_URL" in result.output


def test_a_missing_database_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["api"])
    assert result.exit_code == 2
    assert "database_url" in result.output and "DATABASE_URL" in result.output


def test_a_bad_setting_from_the_environment_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MAX_WAIT_MS", "soon")
    result = CliRunner().invoke(app, ["api", "--database-url", "postgresql://x/y"])
    assert result.exit_code == 2
    assert "max_wait_ms" in result.output
