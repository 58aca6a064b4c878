"""``LeaderElection``: at most one node acts as leader at any instant, on a lease.

The seed polls it::

    election = LeaderElection(name="pipeline_coordinator", node_id=node, ttl=30)
    while True:
        if await election.is_leader():
            await coordinate()
        await asyncio.sleep(10)

and it can campaign in the background and announce changes::

    async with LeaderElection("supervisor", node, ttl=10, on_elected=..., on_revoked=...) as e:
        async for leading in e.changes():
            ...

Why it is safe: leadership is the lease ``leader/<name>``, whose expiry the
database's clock decides. A node believes it leads only until a *local*
deadline: the monotonic time taken just *before* its last successful acquire
or renew request, plus the ttl, minus a safety margin. The server stamped the
lease after that request left, so the local deadline falls before the lease
can expire in the database, and before anyone else can take it: two nodes never
both believe they lead (short of a clock running more than ``margin / ttl``
fast). A node that cannot renew (paused, partitioned) steps down at its
deadline whether or not it can reach the database.

The lease epoch is the leader's fencing token: pass it with the leader's
writes where the target can check it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from orchestrator.commands.errors import LeaseLost
from orchestrator.commands.leases import (
    TRANSIENT_ERRORS,
    CoordinationStore,
    DefaultStore,
    Lease,
    check_ttl,
    default_margin,
    holder_label,
    store_for,
    unique_holder,
)
from orchestrator.events import Resource

log = logging.getLogger(__name__)

LEADER_PREFIX = "leader/"
"""Lease-name prefix of elections, so they share the ``leases`` table with locks."""

OnElected = Callable[[Lease], Awaitable[None]]
OnRevoked = Callable[[], Awaitable[None]]


class LeaderElection(Resource):
    """Campaign for the lease ``leader/<name>`` as ``node_id``.

    ``retry_interval`` (default ``ttl / 3``) is how often a follower tries to
    take the lease and how often the leader renews it. ``on_elected(lease)`` and
    ``on_revoked()`` are awaited in order on each change; keep them short (start
    long work in a task): renewal waits for them when polling with
    ``is_leader()``. Node ids must be unique among live nodes; each election
    object also adds its own token to the holder id, so even duplicates never
    share leadership.
    """

    def __init__(
        self,
        name: str,
        node_id: str,
        ttl: float,
        *,
        pool: asyncpg.Pool | None = None,
        store: CoordinationStore | None = None,
        default_store: DefaultStore | None = None,
        retry_interval: float | None = None,
        safety_margin: float | None = None,
        on_elected: OnElected | None = None,
        on_revoked: OnRevoked | None = None,
    ) -> None:
        self.ttl = check_ttl(ttl)
        self.name = name
        self.node_id = node_id
        self.retry_interval = self.ttl / 3 if retry_interval is None else float(retry_interval)
        self.safety_margin = default_margin(ttl) if safety_margin is None else safety_margin
        if not 0 < self.retry_interval < self.ttl - self.safety_margin:
            raise ValueError(
                f"retry_interval {self.retry_interval:g}s must be > 0 and shorter than "
                f"ttl - safety_margin ({self.ttl - self.safety_margin:g}s), or renewal is late"
            )
        self.holder_id = unique_holder(node_id)
        self.on_elected = on_elected
        self.on_revoked = on_revoked
        self._pool = pool
        self._store: CoordinationStore | None = store
        self._default_store = default_store
        self._lease: Lease | None = None
        self._deadline = 0.0  # loop time until which we may believe we lead
        self._renew_at = 0.0
        self._next_attempt = 0.0
        self._step_lock = asyncio.Lock()
        self._pending: collections.deque[Lease | None] = collections.deque()
        self._dispatching = False
        self._subscribers: set[asyncio.Queue[bool | None]] = set()
        self._task: asyncio.Task[None] | None = None

    # --- what a node asks -----------------------------------------------------------

    @property
    def lease_name(self) -> str:
        """The row name in the ``leases`` table."""
        return LEADER_PREFIX + self.name

    @property
    def leading(self) -> bool:
        """Whether this node may act as leader right now (no I/O, local deadline)."""
        return self._lease is not None and asyncio.get_running_loop().time() < self._deadline

    @property
    def lease(self) -> Lease | None:
        """The lease as last granted or renewed while this node believed it led."""
        return self._lease

    @property
    def fencing_token(self) -> int | None:
        """The leadership epoch while leading, else ``None``."""
        return self._lease.epoch if self.leading and self._lease is not None else None

    async def is_leader(self) -> bool:
        """Whether this node leads; campaigns or renews first if that is due.

        Cheap when called often: it touches the database at most once per
        ``retry_interval``, and never when the background campaign runs.
        Errors that retrying cannot cure are raised; a background campaign
        that died re-raises its error here.
        """
        if self._task is not None:
            if self._task.done():
                self._task.result()  # raises the error that ended it
            return self.leading
        await self._step()
        return self.leading

    async def leader(self) -> str | None:
        """The current leader's node id per the database, or ``None``."""
        lease = await self._get_store().current(self.lease_name)
        return None if lease is None else holder_label(lease.holder)

    def changes(self) -> AsyncIterator[bool]:
        """Iterate over leadership changes of this node: ``True`` elected, ``False`` revoked.

        Ends when the election is stopped.
        """
        queue: asyncio.Queue[bool | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return self._iterate(queue)

    # --- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign until cancelled: take the lease when free, renew it while held.

        Cancelling it does not release the lease (it lapses after the ttl, as a
        crash would); use ``stop()`` for a clean hand-over.
        """
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._step()
            except Exception:
                log.exception("election %s: campaign of %s failed", self.name, self.holder_id)
                raise
            wake = self._renew_at if self._lease is not None else self._next_attempt
            if self._lease is not None:
                wake = min(wake, self._deadline)
            await asyncio.sleep(max(0.0, wake - loop.time()))

    async def start(self) -> None:
        """Run the campaign in a background task."""
        if self._task is not None:
            raise RuntimeError(f"election {self.name!r} already started")
        self._task = asyncio.create_task(self.run(), name=f"campaign {self.lease_name}")

    async def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; release leadership now (else it lapses after the ttl).

        Re-raises the error that ended the background campaign, if one did.
        """
        task, self._task = self._task, None
        error: BaseException | None = None
        if task is not None:
            task.cancel()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                error = outcome
        if release:
            await self.resign()
        for queue in self._subscribers:
            queue.put_nowait(None)
        if error is not None:
            raise error

    async def resign(self) -> None:
        """Give up leadership now, if held; campaign again only after ``retry_interval``."""
        async with self._step_lock:
            lease = self._lease
            if lease is None:
                return
            loop = asyncio.get_running_loop()
            self._next_attempt = loop.time() + self.retry_interval
            try:
                await self._get_store().release(lease)
            finally:
                self._set(None)
        await self._dispatch()

    # --- internals ------------------------------------------------------------------

    def _get_store(self) -> CoordinationStore:
        if self._store is None:
            default = None if self._default_store is None else self._default_store()
            self._store = store_for(self._pool, f"LeaderElection({self.name!r})", default)
        return self._store

    async def _step(self) -> None:
        async with self._step_lock:
            await self._step_locked()
        await self._dispatch()

    async def _step_locked(self) -> None:
        loop = asyncio.get_running_loop()
        store = self._get_store()
        if self._lease is not None:
            if loop.time() >= self._deadline:
                log.warning("election %s: %s stepped down, lease not renewed", self.name, self)
                self._set(None)
            elif loop.time() >= self._renew_at:
                await self._renew(store, self._lease)
                return
            else:
                return
        if loop.time() < self._next_attempt:
            return
        started = loop.time()
        self._next_attempt = started + self.retry_interval
        try:
            lease = await store.acquire(self.lease_name, self.holder_id, self.ttl)
        except TRANSIENT_ERRORS as error:
            log.warning("election %s: campaign failed, retrying: %r", self.name, error)
            return
        if lease is not None:
            self._deadline = started + self.ttl - self.safety_margin
            self._renew_at = started + self.retry_interval
            self._set(lease)

    async def _renew(self, store: CoordinationStore, lease: Lease) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout_at(self._deadline):
                renewed = await store.renew(lease, self.ttl)
        except LeaseLost as lost:
            log.warning("election %s: %s", self.name, lost)
            self._set(None)
            return
        except TRANSIENT_ERRORS as error:
            if loop.time() >= self._deadline:
                log.warning("election %s: stepped down, renew failed: %r", self.name, error)
                self._set(None)
            else:
                log.warning("election %s: renew failed, retrying: %r", self.name, error)
                self._renew_at = loop.time() + min(self.retry_interval, 0.5)
            return
        except BaseException:
            self._set(None)  # unknown outcome: stop claiming before raising
            raise
        self._lease = renewed
        self._deadline = started + self.ttl - self.safety_margin
        self._renew_at = started + self.retry_interval

    def _set(self, lease: Lease | None) -> None:
        was = self._lease is not None
        self._lease = lease
        if was != (lease is not None):
            if lease is not None:
                log.info("election %s: %s elected (epoch %s)", self.name, self.node_id, lease.epoch)
            else:
                log.info("election %s: %s no longer leader", self.name, self.node_id)
            self._pending.append(lease)

    async def _dispatch(self) -> None:
        """Tell callbacks and subscribers about changes, in order, once each.

        Re-entrant calls (a callback calling ``is_leader()``) leave the draining
        to the outer call, so callbacks may use the election freely.
        """
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                lease = self._pending.popleft()
                for queue in self._subscribers:
                    queue.put_nowait(lease is not None)
                if lease is not None and self.on_elected is not None:
                    await self.on_elected(lease)
                elif lease is None and self.on_revoked is not None:
                    await self.on_revoked()
        finally:
            self._dispatching = False

    async def _iterate(self, queue: asyncio.Queue[bool | None]) -> AsyncIterator[bool]:
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._subscribers.discard(queue)

    def __repr__(self) -> str:
        return f"LeaderElection({self.name!r}, node_id={self.node_id!r})"
