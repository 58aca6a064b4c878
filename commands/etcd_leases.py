"""Leases with fencing epochs on etcd (``distributed.coordination.backend: etcd``).

The same contract as ``commands.leases.LeaseStore`` (acquire, renew, release,
current, held), so ``DistributedLock``, ``LeaderElection`` and execution writers
run on either. How etcd keeps it:

* **etcd's lease timer decides expiry.** A holder key is attached to an etcd lease
  of the granted ttl (whole seconds, rounded up); renewal is a keep-alive. When a
  holder dies its keep-alives stop and etcd deletes the key, so nobody's local
  clock decides that a lease is free.
* **The fencing epoch is etcd's revision.** Taking a lease creates its holder key
  in a transaction guarded by "the key does not exist"; the key's create revision
  is unique and grows with every write to the cluster, so each tenure's epoch is
  above every earlier one's. A writer that must clear the highest epoch its log
  holds (``min_epoch``, e.g. a log first written under PostgreSQL leases) raises a
  persistent offset added to every revision, so epochs still only grow.
* **Every change is one guarded transaction** (compare the key's create revision,
  then put or delete), so a stale holder can never renew, release or overwrite a
  newer tenure.

Endpoints are tried in turn: a member that does not answer within ``timeout`` is
skipped for the next one (a 3-member cluster keeps serving with one member down).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from orchestrator.commands.errors import CoordinationUnavailable, LeaseLost
from orchestrator.commands.leases import Lease, check_ttl

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PREFIX = "orchestrator/leases/"


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` of ``http://host:port``, ``host:port`` or ``host`` (port 2379)."""
    url = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    if url.scheme not in ("", "http"):
        raise ValueError(
            f"etcd endpoint {endpoint!r}: only plain http:// endpoints are supported "
            "(the client speaks gRPC without TLS)"
        )
    if not url.hostname:
        raise ValueError(f"etcd endpoint {endpoint!r} names no host")
    return url.hostname, url.port or 2379


class EtcdLeaseStore:
    """Acquire, renew and release leases as keys under ``prefix`` in etcd."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        outage_window: float = 10.0,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd coordination needs at least one endpoint")
        self._endpoints = [parse_endpoint(e) for e in endpoints]
        if importlib.util.find_spec("aetcd") is None:
            raise CoordinationUnavailable(
                "etcd", self.endpoints, "no etcd client: pip install 'orchestrator-state[etcd]'"
            )
        self._prefix = prefix
        self._timeout = timeout
        self._outage_window = outage_window
        """How long every member failing is retried (a leader election) before
        ``CoordinationUnavailable``."""
        self._auth = (username, password)
        self._current = 0
        self._client: Any = None
        self._outage_logged = False

    @property
    def endpoints(self) -> list[str]:
        return [f"{host}:{port}" for host, port in self._endpoints]

    def _holder_key(self, name: str) -> bytes:
        return f"{self._prefix}holder/{name}".encode()

    @property
    def _offset_key(self) -> bytes:
        return f"{self._prefix}epoch-offset".encode()

    def _new_client(self) -> Any:
        import aetcd  # an optional dependency: the `etcd` extra

        host, port = self._endpoints[self._current]
        return aetcd.Client(
            host=host,
            port=port,
            username=self._auth[0],
            password=self._auth[1],
            timeout=math.ceil(self._timeout),
            connect_wait_timeout=math.ceil(self._timeout),
        )

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``op`` on a client, moving to the next endpoint when one does not answer."""
        import aetcd.exceptions as errors

        last: Exception | None = None
        loop = asyncio.get_running_loop()
        # A leader election answers "leader changed" on every member for a while (longer
        # on a loaded machine): go round the members with a bounded backoff until the
        # window has passed, then give up loudly.
        deadline = loop.time() + self._outage_window
        pause = 0.05
        attempt = 0
        while attempt < len(self._endpoints) or loop.time() < deadline:
            if attempt >= len(self._endpoints) and attempt % len(self._endpoints) == 0:
                await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
                pause = min(pause * 2, 1.0)
            attempt += 1
            if self._client is None:
                self._client = self._new_client()
            try:
                result = await op(self._client)
            except (errors.ConnectionFailedError, errors.ConnectionTimeoutError) as exc:
                last = exc
                client, self._client = self._client, None
                await client.close()
                self._current = (self._current + 1) % len(self._endpoints)
                continue
            if self._outage_logged:
                self._outage_logged = False
                log.info("etcd answers again (%s)", self.endpoints[self._current])
            return result
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("etcd unreachable at %s: %s", ", ".join(self.endpoints), last)
        raise CoordinationUnavailable("etcd", self.endpoints, str(last))

    async def _txn(self, compare: list[Any], success: list[Any]) -> tuple[bool, list[Any]]:
        """One etcd transaction: ``success`` runs if every comparison holds."""
        ok, responses = await self._call(
            lambda c: c.transaction(compare=compare, success=success, failure=[])
        )
        return bool(ok), responses

    async def close(self) -> None:
        """Close the connection (leases stay until released or expired)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- the lease contract -------------------------------------------------------

    async def acquire(
        self, name: str, holder: str, ttl: float, *, min_epoch: int = 0
    ) -> Lease | None:
        """Take the lease if nobody else holds it; else ``None``. Always a new tenure:
        taking it again as the same holder ends the previous one first."""
        seconds = _whole_seconds(ttl)
        key = self._holder_key(name)
        for _ in range(3):  # a raised epoch offset is one more round
            current = await self._call(lambda c: c.get(key))
            if current is not None:
                if _decode(current.value).get("holder") != holder:
                    log.debug("lease %s is held by %s", name, _decode(current.value))
                    return None
                await self._end(key, current.create_revision, current.lease)
            granted = await self._grant(seconds)
            seconds = max(seconds, int(granted.ttl))  # etcd may raise it to its minimum
            acquired_at = datetime.now(UTC)
            value = {"holder": holder, "acquired_at": acquired_at.isoformat(), "ttl": seconds}
            t = _ops()
            ok, responses = await self._txn(
                [t.version(key) == 0],
                [
                    t.put(key, _encode(value), lease=granted.id),
                    t.get(key),
                    t.get(self._offset_key),
                ],
            )
            if not ok:
                log.debug("lease %s was taken by another holder meanwhile", name)
                await self._revoke(granted.id)
                return None
            created = responses[1][0][1].create_revision
            offset_kv = responses[2][0][1] if responses[2] else None
            offset = int(offset_kv.value) if offset_kv is not None else 0
            epoch = created + offset
            if epoch < min_epoch:
                await self._raise_offset(offset_kv, min_epoch - created + 1)
                await self._end(key, created, granted.id)
                continue
            value["epoch"] = epoch
            ok, _ = await self._txn(
                [t.create(key) == created], [t.put(key, _encode(value), lease=granted.id)]
            )
            if not ok:
                return None
            log.debug("lease %s acquired by %s at epoch %s (etcd)", name, holder, epoch)
            expires_at = acquired_at + timedelta(seconds=seconds)
            return Lease(name, holder, epoch, expires_at, acquired_at, float(seconds))
        return None

    async def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Keep the tenure alive for ``ttl`` more seconds (default: its last ttl), same
        epoch; ``LeaseLost`` if it expired or anyone (even this holder) took it since."""
        seconds = _whole_seconds(lease.ttl if ttl is None else ttl)
        key = self._holder_key(lease.name)
        current = await self._call(lambda c: c.get(key))
        value = None if current is None else _decode(current.value)
        if current is None or value is None or not _is(value, lease):
            raise self._lost(lease, value)
        if seconds == value.get("ttl"):
            reply = await self._call(lambda c: c.refresh_lease(current.lease))
            if reply is None or reply.TTL <= 0:
                raise self._lost(lease, None)
        else:
            granted = await self._grant(seconds)
            value["ttl"] = seconds
            t = _ops()
            ok, _ = await self._txn(
                [t.create(key) == current.create_revision],
                [t.put(key, _encode(value), lease=granted.id)],
            )
            await self._revoke(current.lease if ok else granted.id)
            if not ok:
                raise self._lost(lease, None)
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        return Lease(
            lease.name, lease.holder, lease.epoch, expires_at, lease.acquired_at, float(seconds)
        )

    async def release(self, lease: Lease) -> bool:
        """Give the lease up now, if it is still this tenure's; return whether it was."""
        key = self._holder_key(lease.name)
        current = await self._call(lambda c: c.get(key))
        if current is None or not _is(_decode(current.value), lease):
            return False
        return await self._end(key, current.create_revision, current.lease)

    async def current(self, name: str) -> Lease | None:
        """The lease's live tenure, or ``None`` if nobody holds it now."""
        key = self._holder_key(name)
        current = await self._call(lambda c: c.get(key))
        return None if current is None else await self._lease_of(name, current)

    async def held(self, prefix: str = "") -> list[Lease]:
        """Every live lease whose name starts with ``prefix``, ordered by name."""
        base = self._holder_key("")
        found = await self._call(lambda c: c.get_prefix(base + prefix.encode()))
        leases = []
        for kv in found:
            lease = await self._lease_of(kv.key[len(base) :].decode(), kv)
            if lease is not None:
                leases.append(lease)
        return sorted(leases, key=lambda lease: lease.name)

    # --- helpers --------------------------------------------------------------------

    async def _lease_of(self, name: str, kv: Any) -> Lease | None:
        value = _decode(kv.value)
        if "epoch" not in value:  # a tenure being taken right now
            return None
        info = await self._call(lambda c: c.get_lease_info(kv.lease, keys=False))
        if info.TTL < 0:  # the etcd lease is gone (-1); 0 is "under a second left"
            return None
        acquired = datetime.fromisoformat(value["acquired_at"])
        expires = datetime.now(UTC) + timedelta(seconds=max(info.TTL, 0.5))
        epoch, ttl = int(value["epoch"]), float(value["ttl"])
        return Lease(name, value["holder"], epoch, expires, acquired, ttl)

    async def _grant(self, seconds: int) -> Any:
        return await self._call(lambda c: c.lease(seconds))

    async def _end(self, key: bytes, created: int, etcd_lease: int) -> bool:
        t = _ops()
        ok, _ = await self._txn([t.create(key) == created], [t.delete(key)])
        await self._revoke(etcd_lease)
        return bool(ok)

    async def _raise_offset(self, kv: Any, at_least: int) -> None:
        t = _ops()
        if kv is None:
            guard = t.version(self._offset_key) == 0
        else:
            guard = t.mod(self._offset_key) == kv.mod_revision
        await self._txn([guard], [t.put(self._offset_key, str(at_least).encode())])

    async def _revoke(self, etcd_lease: int) -> None:
        if not etcd_lease:
            return
        import aetcd.exceptions as errors

        try:
            await self._call(lambda c: c.revoke_lease(etcd_lease))
        except (errors.ClientError, CoordinationUnavailable):  # already gone: nothing to free
            pass

    @staticmethod
    def _lost(lease: Lease, now: dict[str, Any] | None) -> LeaseLost:
        return LeaseLost(
            lease.name,
            lease.holder,
            lease.epoch,
            current_holder=None if now is None else now.get("holder"),
            current_epoch=None if now is None or "epoch" not in now else int(now["epoch"]),
        )


def _ops() -> Any:
    """aetcd's comparison and operation builders for transactions."""
    from aetcd.client import Transactions

    return Transactions()


def _whole_seconds(ttl: float) -> int:
    return max(1, math.ceil(check_ttl(ttl)))


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is(value: dict[str, Any], lease: Lease) -> bool:
    return value.get("holder") == lease.holder and value.get("epoch") == lease.epoch
