"""The ports the write side talks through, and an in-memory read model for tests.

``commands`` may not import ``projections`` (they are siblings), yet a writer must
read the state the projection folded (design §3: take ownership, wait until the read
model applied it, load state from it). So the writer depends on the small
:class:`ReadModel` protocol; ``orchestrator.state`` wires the adapter backed by the
projection's PostgreSQL tables. The log and lease ports are what ``events.log.EventLog``
and ``commands.leases.LeaseStore`` already offer, named so the writer's needs are
visible in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

from orchestrator.commands.errors import CommandError
from orchestrator.commands.leases import Lease, default_margin
from orchestrator.events import (
    DEFAULT_CLAIM_CHECK_THRESHOLD,
    DEFAULT_COMPRESS_THRESHOLD,
    BlobStore,
    DataKeySource,
    Envelope,
    ExecutionState,
    NamespaceState,
    Position,
    Sealer,
    UserData,
    encode_user_data,
    encode_user_data_delta,
    error_fields,
    step,
    step_shared,
)
from orchestrator.events import CompressionAlgorithm as Algorithm

_log = logging.getLogger(__name__)


@error_fields(
    "read model did not reach {_token} within {timeout:g}s{_seen}: "
    "is the projection processor running?"
)
class ReadModelTimeout(CommandError):
    """The read model did not apply ``position`` within ``timeout`` seconds.

    Retriable: the projection is behind or down; waiting longer (or restarting it) helps.
    """

    retriable = True

    position: Position
    timeout: float
    _: KW_ONLY
    applied: int | None = None

    @property
    def _seen(self) -> str:
        return "" if self.applied is None else f" (applied up to offset {self.applied})"

    @property
    def _token(self) -> str:
        return self.position.token()


class ReadModel(Protocol):
    """The folded state as the projection holds it."""

    async def load_execution(self, execution_id: str) -> ExecutionState | None:
        """The execution's state, or ``None`` if the read model has no such execution."""
        ...

    async def load_namespace(self, namespace: str) -> NamespaceState:
        """The namespace's variables (an empty namespace if none were ever written)."""
        ...

    async def wait_for(self, position: Position, timeout: float) -> None:  # noqa: ASYNC109
        """Return once the event at ``position`` (and everything before it on its
        partition) is applied; raise :class:`ReadModelTimeout` after ``timeout``."""
        ...


class Appender(Protocol):
    """What a writer needs from ``events.log.EventLog``."""

    async def append_batch(
        self, envelopes: Sequence[Envelope], topic: str | None = None
    ) -> list[Position]:
        """Append in order, wait for every acknowledgement, return the positions."""
        ...

    async def end_offsets(self, topic: str | None = None) -> dict[int, int]:
        """The next offset to be written, per partition of ``topic``."""
        ...


class Leases(Protocol):
    """What a writer needs from ``commands.leases.LeaseStore``."""

    async def acquire(
        self, name: str, holder: str, ttl: float, *, min_epoch: int = 0
    ) -> Lease | None:
        """Take the lease (a new tenure, epoch + 1 and >= ``min_epoch``) if free, expired
        or ours; else None."""
        ...

    async def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend the tenure, keeping the epoch; ``LeaseLost`` if it is no longer ours."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Give the tenure up; whether it was still ours."""
        ...

    async def current(self, name: str) -> Lease | None:
        """The live tenure of ``name``, if any."""
        ...


@dataclass(eq=False, repr=False, kw_only=True)
class Wiring:
    """What a writer is wired to (``ExecutionWriter``, ``SharedStateWriter``): the
    ports above, the node it writes as, and the blob store large user data goes to."""

    node_id: str
    log: Appender
    leases: Leases
    read_model: ReadModel
    blob_store: BlobStore | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDataSettings:
    """How opaque user data is encoded: compressed with ``algorithm`` above
    ``compress_threshold`` bytes of JSON (``exclude_fields`` kept out of it), into the
    blob store above ``claim_check_threshold`` bytes; sealed with the scope's data key
    from ``data_keys`` when that is set (encryption on)."""

    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    claim_check_threshold: int = DEFAULT_CLAIM_CHECK_THRESHOLD
    compression_level: int = 3
    algorithm: Algorithm = "zstd"
    exclude_fields: tuple[str, ...] = ()
    data_keys: DataKeySource | None = None


class _NeedsBlobStore(Exception):
    """Internal: the value is above the claim-check threshold (redo it off the loop)."""


class _Probe:
    def put_blob(self, key: str, data: bytes) -> str:
        raise _NeedsBlobStore

    def get_blob(self, uri: str) -> bytes:
        raise _NeedsBlobStore


async def encode_value(
    value: Any,
    blob_store: BlobStore | None,
    settings: UserDataSettings = UserDataSettings(),
    *,
    scope: str | None = None,
    base: bytes | None = None,
    raw: bytes | None = None,
) -> UserData:
    """Encode user data (sealed under ``scope``'s data key when encryption is on); only a
    claim-checked value (blob I/O) leaves the event loop. With ``base``, ``value`` is
    JSON bytes stored as a delta against ``base`` (``events.delta``); ``raw``: the
    value's JSON bytes when the caller already has them."""
    kwargs: dict[str, Any] = {
        "claim_check_threshold": settings.claim_check_threshold,
        "compression_level": settings.compression_level,
    }
    if base is None:
        kwargs.update(
            compress_threshold=settings.compress_threshold,
            algorithm=settings.algorithm,
            exclude_fields=settings.exclude_fields,
            raw=raw,
        )
    if isinstance(value, UserData):
        return value
    if settings.data_keys is not None and scope is not None:
        kwargs["sealer"] = Sealer(scope, await settings.data_keys.key_for_write(scope))
    encode: Any = encode_user_data if base is None else encode_user_data_delta
    args = (value,) if base is None else (value, base)
    try:
        encoded: UserData = encode(*args, blob_store=_Probe() if blob_store else None, **kwargs)
    except _NeedsBlobStore:
        encoded = await asyncio.to_thread(encode, *args, blob_store=blob_store, **kwargs)
    return encoded


async def take_lease(
    leases: Leases,
    name: str,
    holder: str,
    ttl: float,
    *,
    wait: float = 0.0,
    min_epoch: int = 0,
) -> tuple[Lease | None, float]:
    """Try to take ``name`` for up to ``wait`` seconds (0: once): the lease (or ``None``)
    and the loop time until which to believe it is ours.

    The deadline counts from *before* the request that granted the lease, minus a
    margin (``default_margin``), so a holder stops believing in a lease before the
    database's clock can give it to someone else.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait
    retry = min(0.5, ttl / 3)
    said = False
    while True:
        started = loop.time()
        lease = await leases.acquire(name, holder, ttl, min_epoch=min_epoch)
        if lease is not None:
            return lease, started + lease.ttl - default_margin(lease.ttl)
        if loop.time() + retry > give_up:
            return None, 0.0
        if not said:  # a waiting resume says what it waits for, once
            said = True
            current = await leases.current(name)
            if current is not None:
                _log.info(
                    "%s is held by %s (epoch %s) until %s: waiting up to %.0f s for it to be "
                    "released or to expire (taken at once if that holder's database "
                    "session ends)",
                    name,
                    current.holder,
                    current.epoch,
                    current.expires_at.isoformat(timespec="seconds"),
                    give_up - loop.time(),
                )
        await asyncio.sleep(retry)


def fold_shared_into(namespaces: dict[str, NamespaceState], envelope: Envelope) -> None:
    """Fold a shared-state event into its namespace's entry of ``namespaces`` (the
    in-memory read models keep their namespaces so)."""
    namespace = getattr(envelope.payload, "namespace", "")
    state = step_shared(namespaces.get(namespace), envelope).state
    if state is not None:
        namespaces[namespace] = state


class InMemoryReadModel:
    """A read model that folds the events it is fed, with the projection's fold.

    For unit tests and examples: feed it what the log holds (``feed``), in log order,
    and it answers like the PostgreSQL read model would, including waits.
    """

    def __init__(self) -> None:
        self._executions: dict[str, ExecutionState] = {}
        self._namespaces: dict[str, NamespaceState] = {}
        self._applied: dict[tuple[str, int], int] = {}
        self._changed = asyncio.Condition()

    async def feed(self, position: Position, envelope: Envelope) -> None:
        """Fold one event read from the log at ``position``."""
        key = (position.topic, position.partition)
        if self._applied.get(key, -1) >= position.offset:
            return
        if envelope.execution_id is None:
            fold_shared_into(self._namespaces, envelope)
        else:
            result = step(self._executions.get(envelope.execution_id), envelope)
            if result.state is not None:
                self._executions[envelope.execution_id] = result.state
        async with self._changed:
            self._applied[key] = position.offset
            self._changed.notify_all()

    async def load_execution(self, execution_id: str) -> ExecutionState | None:
        return self._executions.get(execution_id)

    async def load_namespace(self, namespace: str) -> NamespaceState:
        return self._namespaces.get(namespace) or NamespaceState(namespace=namespace)

    async def wait_for(self, position: Position, timeout: float) -> None:  # noqa: ASYNC109
        key = (position.topic, position.partition)
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self._applied.get(key, -1) >= position.offset)
        except TimeoutError:
            raise ReadModelTimeout(position, timeout, applied=self._applied.get(key)) from None
