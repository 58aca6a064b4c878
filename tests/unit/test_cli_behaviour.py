"""The CLI as users meet it: help everywhere, --version, one line per expected failure
(no traceback unless --debug), and no secret in `config check`'s output.

The failure tests run the real console script in a subprocess against addresses where
nothing listens, so they need no services.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli import app

CLI = shutil.which("orchestrator-state", path=str(Path(sys.executable).parent)) or "missing"
PASSWORD, TOKEN, KEY = "Pw-h2-7f3a9", "tok-h2-c41d2b", "a2V5LWgyLTk5ZTRmMDAwMDAwMDAwMDA="


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the tree, as click itself resolves it (nothing listed by hand).

    Typer vendors its own click, so groups are recognised by what they do."""
    yield path
    if hasattr(command, "list_commands"):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    base.update(COLUMNS="300", NO_COLOR="1")
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=60
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


def _one_clear_line(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for word in expected:
        assert word in line, line
    return line


def test_the_walk_finds_every_group() -> None:
    top = {path[0] for path in COMMANDS if path}
    assert {"config", "dlq", "snapshots", "bench", "replay"} <= top
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "<root>")
def test_help_renders_for_every_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"Usage: orchestrator-state {' '.join(path)}".rstrip() in result.output


def test_help_and_version_from_the_installed_script() -> None:
    proc = _run("snapshots", "run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: orchestrator-state snapshots run" in proc.stdout
    assert "s3://bucket/prefix" in proc.stdout  # help text with URLs renders
    proc = _run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"orchestrator-state {metadata.version('orchestrator-state')}"


def test_kafka_down_is_one_line() -> None:
    address = f"127.0.0.1:{_free_port()}"
    proc = _run(
        "bench", "append", "--events", "10", "--warmup", "0",
        env={"KAFKA_BOOTSTRAP_SERVERS": address},
    )  # fmt: skip
    _one_clear_line(proc, "Kafka", address, "KAFKA_BOOTSTRAP_SERVERS")


def test_postgres_down_is_one_line_without_the_password() -> None:
    address = f"127.0.0.1:{_free_port()}"
    dsn = f"postgresql://orch:{PASSWORD}@{address}/orchestrator"
    proc = _run("dlq", "list", "--database-url", dsn)
    line = _one_clear_line(proc, "cannot reach PostgreSQL", address, "DATABASE_URL")
    assert PASSWORD not in proc.stderr + proc.stdout, line


@pytest.mark.parametrize("server", ["PostgreSQL", "Kafka"])
def test_a_server_that_never_answers_fails_within_the_deadline(server: str) -> None:
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        if server == "PostgreSQL":
            args = ["dlq", "list", "--database-url", f"postgresql://u@{address}/db"]
        else:  # a command that needs both asks Kafka first
            args = ["replay", "e-1", "--source", "log", "--bootstrap-servers", address]
            args += ["--database-url", "postgresql://u@127.0.0.1:1/db"]
        proc = _run(*args, env={"ORCHESTRATOR_CONNECT_TIMEOUT": "1"})
    _one_clear_line(proc, f"cannot reach {server} at {address}")


def test_a_bad_dsn_is_one_line() -> None:
    proc = _run("dlq", "list", "--database-url", "mysql://root@db/app")
    _one_clear_line(proc, "invalid PostgreSQL DSN", "postgresql://")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("checkpointing:\n  enabled: [true\n", "invalid YAML"),
        ("checkpointing:\n  enabeld: true\n", "checkpointing.enabeld: unknown option"),
        ("checkpointing: &c\n  enabled: true\n  again: *c\n", "recursive alias"),
        (
            'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
            + "".join(
                f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "expands to more than",
        ),
    ],
    ids=["invalid-yaml", "unknown-option", "recursive-anchor", "billion-laughs"],
)
def test_a_bad_config_file_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(text)
    _one_clear_line(_run("config", "check", str(path)), str(path), expected)


def test_a_bad_config_given_to_any_command_is_refused_before_connecting(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text("state_management:\n  snapshots:\n    frequnecy: 5\n")
    proc = _run("snapshots", "lifecycle", "--config", str(path))
    _one_clear_line(proc, f"{path}:3:5", "state_management.snapshots.frequnecy: unknown option")


def test_debug_shows_the_traceback() -> None:
    proc = _run("--debug", "dlq", "list", "--database-url", "mysql://root@db/app")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: invalid PostgreSQL DSN")


def test_config_check_prints_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(
        "state_management:\n"
        "  backend: postgresql\n"
        "  config:\n"
        f"    connection_string: postgresql://orch:{PASSWORD}@db:5432/orchestrator\n"
    )
    env = {
        "DATABASE_URL": f"postgresql://orch:{PASSWORD}@db/orchestrator",
        "ORCHESTRATOR_API_TOKEN": TOKEN,
        "ORCHESTRATOR_SNAPSHOT_KEYS": f"k1:{KEY}",
        "AWS_SECRET_ACCESS_KEY": KEY,
        "S3_ENDPOINT_URL": "http://127.0.0.1:9000",
    }
    human = _run("config", "check", str(path), env=env)
    machine = _run("config", "check", "--json", str(path), env=env)
    for proc in (human, machine):
        assert proc.returncode == 0, proc.stderr
        for secret in (PASSWORD, TOKEN, KEY):
            assert secret not in proc.stdout + proc.stderr
    data = json.loads(machine.stdout)
    assert data["valid"] is True
    assert data["environment"]["ORCHESTRATOR_API_TOKEN"] == "***"
    assert data["environment"]["S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    dsn = data["settings"]["state_management"]["config"]["connection_string"]
    assert dsn == "postgresql://orch:***@db:5432/orchestrator"
    assert "orch:***@db" in human.stdout


def test_config_check_json_lists_the_errors(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text("checkpointing:\n  enabeld: true\nrecovery:\n  enabled: maybe\n")
    proc = _run("config", "check", "--json", str(path))
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["valid"] is False and len(data["errors"]) == 2
