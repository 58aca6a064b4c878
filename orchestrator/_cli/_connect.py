"""Where the CLI opens its connections: with a deadline, naming the server.

Every command connects to PostgreSQL through ``pg_connect`` / ``pg_pool``, and the
short-lived commands that use Kafka first pass ``kafka_reachable``, so a server that is
down or does not answer fails the command within ``connect_timeout()`` seconds
(``ORCHESTRATOR_CONNECT_TIMEOUT``, default 10) with one line naming the server and its
address (never a password), instead of hanging for asyncpg's 60 s or Kafka's 30 s.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg

from orchestrator._cli._errors import KAFKA_HINT, PG_HINT, Unreachable
from orchestrator.config import Settings, kafka_security
from orchestrator.events import PLAINTEXT, KafkaSecurity, why_kafka_unreachable

T = TypeVar("T")

CONNECT_TIMEOUT_ENV = "ORCHESTRATOR_CONNECT_TIMEOUT"


def connect_timeout() -> float:
    """Seconds a command waits for a server to accept and answer."""
    raw = os.environ.get(CONNECT_TIMEOUT_ENV, "")
    try:
        return max(0.1, float(raw)) if raw else 10.0
    except ValueError:
        return 10.0


def pg_address(dsn: str) -> str:
    """``host:port/database`` of a DSN, without user or password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or parse_qs(parts.query).get("host", ["localhost"])[0]
        port = parts.port or 5432
    except ValueError:
        return "<unparsable DSN>"
    return f"{host}:{port}{parts.path or ''}"


@contextmanager
def _reaching(dsn: str, timeout: float) -> Iterator[None]:
    try:
        yield
    except TimeoutError:
        raise Unreachable(
            "PostgreSQL", pg_address(dsn), f"no answer within {timeout:g}s", PG_HINT
        ) from None
    except OSError as exc:  # refused, unknown host, unreachable network
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise Unreachable("PostgreSQL", pg_address(dsn), reason, PG_HINT) from exc


async def pg_connect(dsn: str) -> asyncpg.Connection:
    """One connection, or ``Unreachable`` within the deadline."""
    timeout = connect_timeout()
    with _reaching(dsn, timeout):
        conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=timeout)
    return conn


async def pg_pool(dsn: str, *, max_size: int = 4) -> asyncpg.Pool:
    """A pool (its first connection opened now), or ``Unreachable`` within the deadline."""
    timeout = connect_timeout()
    with _reaching(dsn, timeout):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, timeout=timeout
        )
    return pool


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


def run_on(opened: Callable[[], Awaitable[C]], work: Callable[[C], Awaitable[T]]) -> T:
    """Run ``work`` on what ``opened`` opens (``pg_connect`` / ``pg_pool`` on a DSN),
    closed after, as a command's whole event loop; failures are rendered once, by
    ``orchestrator._cli.root.main``."""

    async def go() -> T:
        resource = await opened()
        try:
            return await work(resource)
        finally:
            await resource.close()

    return asyncio.run(go())


def cli_kafka_security(settings: Settings | None = None) -> KafkaSecurity:
    """The config's ``event_store.kafka_security`` merged with the ``KAFKA_*`` variables
    (an inconsistent combination raises ``KafkaSecurityError``, naming the option)."""
    block = None if settings is None else settings.state_management.event_store.kafka_security
    return kafka_security(block, os.environ)


async def _probe_kafka(bootstrap: str, deadline: float, security: KafkaSecurity) -> None:
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id="orchestrator-state-cli",
        request_timeout_ms=int(deadline * 1000),
        **security.client_kwargs(),
    )
    try:
        async with asyncio.timeout(deadline + 1):
            await client.bootstrap()
    except TimeoutError:
        reason = f"no answer within {deadline:g}s"
        raise Unreachable("Kafka", bootstrap, reason, KAFKA_HINT) from None
    except (KafkaError, OSError) as exc:
        why = await why_kafka_unreachable(bootstrap, security, timeout_s=deadline)
        reason = why or "no broker answered (refused, unknown host or silent)"
        raise Unreachable("Kafka", bootstrap, reason, KAFKA_HINT) from exc
    finally:
        await client.close()


def kafka_reachable(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> str:
    """``bootstrap`` once a broker there answered, or ``Unreachable`` within the deadline."""
    asyncio.run(_probe_kafka(bootstrap, connect_timeout(), security))
    return bootstrap
