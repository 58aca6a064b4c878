"""Expected failures → one line each: what went wrong and what to do.

``main`` (orchestrator/_cli/root.py) calls ``explain`` on whatever escapes a command. An
expected failure (our own ``OrchestratorStateError`` subtree, a server that cannot be
reached, a DSN or YAML that cannot be read, a configuration that does not validate)
becomes one line per problem on stderr and exit 1; ``--debug`` adds the traceback.
Anything else is a bug: one line saying so, and ``--debug`` for the traceback.

Raise ``Unreachable(server, address, reason)`` (or any ``OrchestratorStateError`` with a
clear message) and it renders well; ``_RULES`` below is the whole mapping.
Library modules are looked up in ``sys.modules`` only: a library never imported
cannot have raised, and the CLI's start stays fast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from orchestrator.config import redact_text
from orchestrator.events import LogError, OrchestratorStateError, error_fields

KAFKA_HINT = "check --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS and that the brokers run"
PG_HINT = "check --database-url / DATABASE_URL and that PostgreSQL runs"
S3_HINT = "check --s3-endpoint-url / S3_ENDPOINT_URL, the bucket and AWS_* credentials"
DSN_HINT = "expected postgresql://USER@HOST:5432/DATABASE (password in the URL or PGPASSWORD)"


@error_fields("cannot reach {server} at {address}: {reason}; {hint}")
class Unreachable(OrchestratorStateError):
    """A server did not answer (refused, timed out, unknown host) at ``address``."""

    retriable = True

    server: str
    address: str
    reason: str
    hint: str


_REPEATED = re.compile(r"\b(\w+): \1: ")
_SOCKADDR = re.compile(r"\('([^']*)', (\d+), <AddressFamily\.\w+: \d+>\)")


def _tidy(text: str) -> str:
    """Drop library noise: a class name said twice, socket-address reprs."""
    return _SOCKADDR.sub(r"\1:\2", _REPEATED.sub(r"\1: ", text))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _ours(exc: BaseException) -> list[str] | None:
    if not isinstance(exc, OrchestratorStateError):
        return None
    issues = getattr(exc, "issues", None)  # ConfigError: one line per issue
    if issues:
        return [str(i) for i in issues]
    text = _first_line(exc)  # --debug shows the rest (a server's log tail, say)
    log_path = getattr(exc, "log_path", None)
    if log_path is not None:
        text = f"{text}; its log: {log_path}"
    if isinstance(exc, LogError) and "KAFKA_BOOTSTRAP_SERVERS" not in text:
        text = f"{text}; {KAFKA_HINT}" if "Kafka" in text else f"Kafka: {text}; {KAFKA_HINT}"
    return [text]


def _asyncpg(exc: BaseException) -> list[str] | None:
    pg: Any = sys.modules.get("asyncpg")
    if pg is None:
        return None
    if isinstance(exc, pg.UndefinedTableError):
        return [
            f"PostgreSQL: {_first_line(exc)}: the read-model tables are missing in this "
            "database; apply the migrations (`orchestrator-state project` does at start)"
        ]
    if isinstance(exc, pg.InvalidAuthorizationSpecificationError):
        return [f"PostgreSQL refused the login: {_first_line(exc)}; check user and password"]
    if isinstance(exc, pg.InvalidCatalogNameError):
        return [f"PostgreSQL: {_first_line(exc)}; create it or fix the DSN's database name"]
    if isinstance(exc, pg.ClientConfigurationError):
        return [f"invalid PostgreSQL DSN: {_first_line(exc)}; {DSN_HINT}"]
    if isinstance(exc, pg.PostgresError | pg.InterfaceError):
        return [f"PostgreSQL: {type(exc).__name__}: {_first_line(exc)}"]
    return None


def _library(
    module: str, classes: tuple[str, ...], say: Callable[[BaseException], str]
) -> Callable[[BaseException], list[str] | None]:
    """The line for an error of a library, if that library is loaded and ``exc`` is one
    of its ``classes`` (never imported here: an unloaded library raised nothing)."""

    def explain(exc: BaseException) -> list[str] | None:
        loaded: Any = sys.modules.get(module)
        if loaded is not None and isinstance(exc, tuple(getattr(loaded, c) for c in classes)):
            return [say(exc)]
        return None

    return explain


_kafka = _library(
    "aiokafka.errors",
    ("KafkaError",),
    lambda exc: f"Kafka: {type(exc).__name__}: {_first_line(exc)}; {KAFKA_HINT}",
)
_s3 = _library(
    "botocore.exceptions",
    ("BotoCoreError", "ClientError"),
    lambda exc: f"S3: {_first_line(exc)}; {S3_HINT}",
)
_yaml = _library("yaml", ("YAMLError",), lambda exc: f"invalid YAML: {' '.join(str(exc).split())}")


def _pydantic(exc: BaseException) -> list[str] | None:
    pydantic: Any = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(exc, pydantic.ValidationError):
        return None
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{exc.title}: {where}: {msg}")
    return lines


def _os(exc: BaseException) -> list[str] | None:
    if isinstance(exc, ConnectionError | TimeoutError) or type(exc).__name__ == "gaierror":
        return [f"cannot reach a server: {_first_line(exc)}; check the addresses and servers"]
    if isinstance(exc, OSError) and exc.filename is not None:
        return [f"{exc.filename}: {exc.strerror or _first_line(exc)}"]
    if isinstance(exc, ValueError) and "DSN" in str(exc):
        return [f"invalid DSN: {_first_line(exc)}; {DSN_HINT}"]
    return None


_RULES: tuple[Callable[[BaseException], list[str] | None], ...] = (
    _ours,
    _asyncpg,
    _kafka,
    _s3,
    _yaml,
    _pydantic,
    _os,
)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def explain(exc: BaseException) -> list[str] | None:
    """One line per problem if ``exc`` is an expected failure, else None (a bug)."""
    lines: list[str] = []
    for leaf in _leaves(exc):
        for rule in _RULES:
            found = rule(leaf)
            if found is not None:
                lines.extend(found)
                break
        else:
            return None
    return [redact_text(_tidy(line)) for line in lines]


def unexpected(exc: BaseException) -> str:
    """The one line for a bug: what it was, and how to get the traceback."""
    return redact_text(
        f"unexpected {type(exc).__name__}: {_first_line(exc)} "
        "(run again with --debug for the traceback, and please report it)"
    )
