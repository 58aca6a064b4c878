"""What the Kafka adapters share: error translation and the idempotence probe.

aiokafka's exceptions stop here. Every call into aiokafka made by ``events.topics``,
``events.log`` and ``events.consumer`` runs inside :func:`translated`, which turns a
``KafkaError`` into our ``LogError`` and keeps aiokafka's own ``retriable`` flag, so
the layers above decide retries without importing aiokafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    IncompatibleBrokerVersion,
    KafkaError,
    KafkaTimeoutError,
    NoError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

from orchestrator.events.errors import LogError
from orchestrator.events.security import PLAINTEXT, KafkaSecurity

logger = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1


def is_retriable(exc: BaseException) -> bool:
    """aiokafka's verdict, except that a timeout is always worth another try.

    aiokafka marks ``KafkaTimeoutError`` (buffer full, metadata not ready in time) as
    not retriable; for a caller it is the textbook transient failure.
    """
    if isinstance(exc, KafkaTimeoutError):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    # Connection resets and asyncio timeouts (TimeoutError is an OSError).
    return isinstance(exc, OSError)


def log_error(exc: BaseException, what: str) -> LogError:
    """A ``LogError`` describing ``exc`` (the caller raises it ``from exc``)."""
    return LogError(f"{what}: {type(exc).__name__}: {exc}", retriable=is_retriable(exc))


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise aiokafka and socket errors as ``LogError`` naming what was being done."""
    try:
        yield
    except (KafkaError, OSError) as exc:
        raise log_error(exc, what) from exc


async def broker_supports_idempotence(
    bootstrap_servers: str,
    *,
    client_id: str,
    request_timeout_ms: int,
    security: KafkaSecurity = PLAINTEXT,
) -> bool:
    """Ask the broker for a producer id, as an idempotent producer's first request does.

    Brokers without an idempotent producer (Tansu answers ``UnknownError``, older or
    stripped-down brokers lack the API) make aiokafka's sender task die on its first
    batch, failing every append. Asking once up front lets the log fall back to a
    plain producer instead. Retriable answers (a coordinator still loading) are asked
    again until the request timeout.
    """
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        client_id=f"{client_id}-probe",
        request_timeout_ms=request_timeout_ms,
        **security.client_kwargs(),
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request_timeout_ms / 1000
    try:
        with translated(f"connecting to Kafka at {bootstrap_servers}"):
            await client.bootstrap()
        while True:
            try:
                with translated("probing for an idempotent producer (InitProducerId)"):
                    response = await client.send(
                        client.get_random_node(),
                        InitProducerIdRequest(
                            transactional_id=None,  # nullable: no transactions
                            transaction_timeout_ms=_INT32_MAX,
                        ),
                    )
            except LogError as exc:
                if isinstance(exc.__cause__, IncompatibleBrokerVersion):
                    return False
                raise
            error_type = for_code(response.error_code)
            if error_type is NoError:
                return True
            if "Authorization" in error_type.__name__:
                raise LogError(
                    f"broker at {bootstrap_servers} refused {security.describe()} an "
                    f"idempotent producer id: {error_type.__name__} (grant the user "
                    "IdempotentWrite on the cluster or Write on the topics)",
                    retriable=False,
                )
            if not error_type.retriable:
                logger.info(
                    "broker at %s refused InitProducerId: %s",
                    bootstrap_servers,
                    error_type.__name__,
                )
                return False
            if loop.time() > deadline:
                raise LogError(
                    f"broker at {bootstrap_servers} kept answering InitProducerId with "
                    f"{error_type.__name__} for {request_timeout_ms} ms",
                    retriable=True,
                )
            await asyncio.sleep(0.1)
    finally:
        await client.close()


_LOGIN_REFUSED = (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError)


async def why_unreachable(
    bootstrap_servers: str, security: KafkaSecurity, *, timeout_s: float = 10.0
) -> str | None:
    """Why no broker took a client that could not bootstrap, when one connection says:
    a login refused (named, as aiokafka only logs it), or a broker that closes a plain
    connection (its listener wants SASL or TLS). ``None`` when nothing tells."""
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    int(port),
                    request_timeout_ms=int(timeout_s * 1000),
                    **security.client_kwargs(),
                ),
                timeout_s,
            )
        except _LOGIN_REFUSED as exc:
            return f"login refused ({security.describe()}): {exc}"
        except (KafkaError, OSError, ValueError):
            continue
        try:
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
        except (KafkaError, OSError):
            if not security.sasl:
                return (
                    f"the broker closed an unauthenticated ({security.security_protocol}) "
                    "connection: its listener may want SASL or TLS; set "
                    "KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_* (or event_store.kafka_security)"
                )
        finally:
            conn.close()
    return None


async def explained(exc: LogError, bootstrap_servers: str, security: KafkaSecurity) -> LogError:
    """``exc``, or a non-retriable ``LogError`` naming the refused login behind it."""
    reason = await why_unreachable(bootstrap_servers, security)
    if reason is None:
        return exc
    return LogError(f"cannot use Kafka at {bootstrap_servers}: {reason}", retriable=False)


async def start_client(client: Any, what: str) -> None:
    """Start an aiokafka client (``LogError`` naming ``what`` if it does not), closing
    whatever it opened when it fails."""
    try:
        with translated(what):
            await client.start()
    except LogError:
        with contextlib.suppress(Exception):  # closing what never opened
            await client.stop()
        raise


@asynccontextmanager
async def explaining(bootstrap_servers: str, security: KafkaSecurity) -> AsyncIterator[None]:
    """A ``LogError`` raised inside, replaced by the refused login behind it if that is
    why (:func:`explained`)."""
    try:
        yield
    except LogError as exc:
        better = await explained(exc, bootstrap_servers, security)
        if better is exc:
            raise
        raise better from exc
