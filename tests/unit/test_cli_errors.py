"""The mapping from failures to the one line a user reads (orchestrator/_cli/_errors.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
import pydantic
import pytest
import yaml
from aiokafka.errors import KafkaConnectionError

from orchestrator._cli._errors import Unreachable, explain, unexpected
from orchestrator.config import ConfigError, load_config
from orchestrator.config.redaction import redact, redact_text
from orchestrator.devstack import ServiceStartError
from orchestrator.events.errors import LogError
from orchestrator.projections.errors import DeadLetterNotFound


def _config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(text, "f.yaml")
    return caught.value


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (DeadLetterNotFound(7), "no dead letter with id 7"),
        (
            LogError("connecting to Kafka at h:9: refused", retriable=True),
            "connecting to Kafka at h:9: refused; check --bootstrap-servers",
        ),
        (
            Unreachable("PostgreSQL", "h:5432/db", "Connection refused", "check DATABASE_URL"),
            "cannot reach PostgreSQL at h:5432/db: Connection refused; check DATABASE_URL",
        ),
        (
            ServiceStartError("postgres", "exited 1", Path("/tmp/pg.log"), "FATAL: x\nmore"),
            "its log: /tmp/pg.log",
        ),
        (KafkaConnectionError("Unable to bootstrap"), "Kafka: KafkaConnectionError"),
        (asyncpg.ClientConfigurationError("invalid DSN: x"), "invalid PostgreSQL DSN"),
        (asyncpg.InvalidPasswordError("password authentication failed"), "refused the login"),
        (asyncpg.UndefinedTableError('relation "x" does not exist'), "apply the migrations"),
        (ConnectionRefusedError(111, "Connection refused"), "cannot reach a server"),
        (TimeoutError(), "cannot reach a server"),
        (FileNotFoundError(2, "No such file or directory", "cfg.yaml"), "cfg.yaml: No such"),
        (yaml.YAMLError("bad"), "invalid YAML: bad"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "",
)
def test_expected_failures_are_one_line(exc: BaseException, expected: str) -> None:
    lines = explain(exc)
    assert lines is not None and len(lines) == 1
    assert expected in lines[0]
    assert "\n" not in lines[0]


def test_a_config_error_is_one_line_per_issue() -> None:
    exc = _config_error("checkpointing:\n  enabeld: true\nrecovery:\n  enabled: maybe\n")
    lines = explain(exc)
    assert lines is not None and len(lines) == 2
    assert lines[0].startswith("f.yaml:2:3: checkpointing.enabeld: unknown option")


def test_pydantic_and_exception_groups_name_each_problem() -> None:
    class M(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        port: int

    with pytest.raises(pydantic.ValidationError) as caught:
        M.model_validate({"port": "x", "prot": 1})
    lines = explain(ExceptionGroup("tasks", [caught.value, DeadLetterNotFound(1)]))
    assert lines == [
        "M: port: Input should be a valid integer, unable to parse string as an integer",
        "M: prot: unknown option",
        "no dead letter with id 1",
    ]


def test_a_bug_is_not_explained_and_its_line_points_at_debug() -> None:
    assert explain(KeyError("x")) is None
    assert explain(ExceptionGroup("g", [DeadLetterNotFound(1), KeyError("x")])) is None
    assert "--debug" in unexpected(KeyError("x"))


def test_lines_never_carry_a_password() -> None:
    exc = LogError("connecting to postgresql://u:Sekr1t@db/x failed", retriable=False)
    lines = explain(exc)
    assert lines is not None and "Sekr1t" not in lines[0] and "u:***@db" in lines[0]


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("postgresql://orch:pw1@db:5432/x", "postgresql://orch:***@db:5432/x"),
        ("redis://:pw2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("host=db password=pw3 user=u", "host=db password=*** user=u"),
        ("postgresql://u@db/x?sslpassword=pw4&a=1", "postgresql://u@db/x?sslpassword=***&a=1"),
        ("s3://bucket/prefix and file:///tmp/x", "s3://bucket/prefix and file:///tmp/x"),
    ],
)
def test_redact_text(text: str, clean: str) -> None:
    assert redact_text(text) == clean


def test_redact_by_name() -> None:
    data = {
        "kms_key": "arn:aws:kms:k",
        "api_token": "t",
        "secret_access_key": "s",
        "keys": ["a", "b"],
        "key_prefix": "orchestrator:",
        "max_size": "1GB",
        "url": "redis://:pw@h/0",
        "enabled": True,
        "password": None,
    }
    assert redact(data) == {
        "kms_key": "***",
        "api_token": "***",
        "secret_access_key": "***",
        "keys": ["***", "***"],
        "key_prefix": "orchestrator:",
        "max_size": "1GB",
        "url": "redis://:***@h/0",
        "enabled": True,
        "password": None,
    }


def test_log_lines_are_redacted() -> None:
    from orchestrator._cli.root import _redacted

    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "connecting to %s", ("postgresql://u:pw5@h/db",), None
    )
    assert _redacted(record)
    assert record.getMessage() == "connecting to postgresql://u:***@h/db"


def test_an_unknown_option_from_the_environment_names_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("recovery:\n  enabled: true\n", "f.yaml", {"ORCHESTRATOR_RECOVERY__X": "1"})
    (issue,) = caught.value.issues
    assert issue.mark is None
    assert str(issue) == "recovery.x: unknown option (check its spelling and level)" + (
        " (set by ORCHESTRATOR_RECOVERY__X)"
    )
