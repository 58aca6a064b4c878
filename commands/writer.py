"""``ExecutionWriter``: the single writer of one execution, fenced by a lease epoch.

Design §3, step by step:

1. take the lease ``execution:<id>`` (``LeaseStore``); its epoch ``e`` is the fencing
   token, and every event this writer appends carries it;
2. append the control event ``ExecutionOwnershipTaken(e)`` (no sequence);
3. wait until the read model has applied that event's position, so everything the
   previous owner got acknowledged is in the state it serves;
4. load the state and continue at ``last_sequence + 1``.

A new execution skips 2-4: its creator takes the lease and appends ``ExecutionCreated``.

The lease is renewed in the background. When renewal fails (or the local deadline,
a margin before the lease's ttl, passes without a renewal) every further command
raises ``LeaseLost`` and writes nothing. A writer that does not notice (a GC pause
between the check and the send) is a zombie: its events carry an old epoch and every
fold drops them (``STALE_EPOCH``) once the next owner's ownership event is in the log.

Commands are decided against the running state (``commands.decide``) before anything
is sent; ``execute_many`` (and ``commands.together``) send a batch as one append. If an
append fails, what reached the log is unknown, so the writer re-takes ownership (a new
epoch) before its next command and continues from the state the read model holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field, replace

from orchestrator.commands._writer_parts import Prepared, WriterSettings, encode_checkpoint
from orchestrator.commands.decide import Command, CreateExecution, InvalidCommand, Stamp
from orchestrator.commands.decide import decide_stamped as decide_in
from orchestrator.commands.errors import (
    EpochBelowLog,
    ExecutionExists,
    ExecutionNotFound,
    ExecutionNotOwned,
    LeaseLost,
)
from orchestrator.commands.leases import TRANSIENT_ERRORS, Lease, default_margin
from orchestrator.commands.ports import Wiring, encode_value, take_lease
from orchestrator.events import (
    Envelope,
    ExecutionOwnershipTaken,
    ExecutionState,
    Outage,
    Payload,
    Position,
    UserData,
    record_lease_lost,
    span,
)

log = logging.getLogger(__name__)

_TAKEOVER_ATTEMPTS = 3


@dataclass(eq=False, repr=False)
class ExecutionWriter(Wiring):
    """The one writer of ``execution_id``; use :meth:`create` or :meth:`open`, then
    :meth:`execute`, and :meth:`close` (or ``async with``) to release the lease.

    Built as ``ExecutionWriter(execution_id, node_id=..., log=..., leases=...,
    read_model=...)``, with ``blob_store``, ``settings`` and ``topic`` optional."""

    execution_id: str
    _: KW_ONLY
    settings: WriterSettings = field(default_factory=WriterSettings)
    topic: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    last_position: Position | None = field(default=None, init=False)
    _lease: Lease | None = field(default=None, init=False)
    _valid_until: float = field(default=0.0, init=False)
    _lost: LeaseLost | None = field(default=None, init=False)
    _state: ExecutionState | None = field(default=None, init=False)
    _resync: bool = field(default=False, init=False)
    _renewer: asyncio.Task[None] | None = field(default=None, init=False)

    # --- introspection -----------------------------------------------------------------

    @property
    def lease_name(self) -> str:
        return f"execution:{self.execution_id}"

    @property
    def epoch(self) -> int:
        """The fencing token every event of this writer carries (0 before ownership)."""
        return 0 if self._lease is None else self._lease.epoch

    @property
    def state(self) -> ExecutionState:
        """The state after this writer's last acknowledged event."""
        if self._state is None:
            raise ExecutionNotOwned(self.execution_id, self.node_id)
        return self._state

    @property
    def lost(self) -> LeaseLost | None:
        """Why the lease is no longer ours, once it is not."""
        return self._lost

    # --- ownership ---------------------------------------------------------------------

    async def create(self, command: CreateExecution) -> Position:
        """Create the execution: take its lease and append ``ExecutionCreated`` (seq 1)."""
        if command.execution_id != self.execution_id:
            raise ValueError(f"{command.execution_id!r} is not {self.execution_id!r}")
        async with self.lock:
            lease = await self._take_lease()
            try:
                if lease.epoch > 1 and await self.read_model.load_execution(self.execution_id):
                    raise ExecutionExists(self.execution_id)
                encoded = await self.encode(command)
                stamp = self._stamp(pipeline_id=command.pipeline_id)
                with span(
                    "orchestrator.decide", execution_id=self.execution_id, command="CreateExecution"
                ):
                    envelopes, state = decide_in(None, encoded, stamp)  # checked and folded once
                positions = await self._append(envelopes)
                if lease.epoch > 1:
                    # A creator before us may have crashed after appending: make sure
                    # our ExecutionCreated is the one the fold applied.
                    await self.read_model.wait_for(positions[-1], self.settings.read_model_timeout)
                    seen = await self.read_model.load_execution(self.execution_id)
                    if seen is None or seen.epoch != lease.epoch or seen.last_sequence != 1:
                        raise ExecutionExists(self.execution_id)
            except BaseException:
                await self._drop_lease()
                raise
            self._state = state
            self._start_renewal()
            log.info(
                "execution %s created by %s (epoch %s)",
                self.execution_id,
                self.node_id,
                lease.epoch,
            )
            return positions[-1]

    async def open(self, *, wait: float = 0.0) -> ExecutionState:
        """Take over the execution (design §3); wait up to ``wait`` s for a live lease."""
        async with self.lock:
            state = await self._take_over(wait=wait)
            self._start_renewal()
            return state

    async def _take_over(self, *, wait: float = 0.0, drop: bool = True) -> ExecutionState:
        """Lease + ownership event, at an epoch above every epoch the log holds.

        The floor comes from the state the read model serves; if the ownership event
        finds an even higher epoch there (written without a lease), the lease is taken
        again above it, so nothing written without a lease can wedge an execution."""
        seen = await self.read_model.load_execution(self.execution_id)
        floor = 0 if seen is None else seen.epoch + 1
        for attempt in range(_TAKEOVER_ATTEMPTS):
            await self._take_lease(wait=wait, min_epoch=floor)
            try:
                return await self._take_ownership()
            except EpochBelowLog as below:
                floor = below.epoch + 1
                log.warning(
                    "execution %s: the log holds epoch %s above our lease's; taking over "
                    "again above it (attempt %s)",
                    self.execution_id,
                    below.epoch,
                    attempt + 1,
                )
            except BaseException:
                if drop:
                    await self._drop_lease()
                raise
        if drop:
            await self._drop_lease()
        raise ExecutionNotOwned(self.execution_id, self.node_id, floor)

    async def close(self) -> None:
        """Stop renewing and release the lease (safe to call twice)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        await self._drop_lease()

    async def __aenter__(self) -> ExecutionWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _take_lease(self, *, wait: float = 0.0, min_epoch: int = 0) -> Lease:
        lease, self._valid_until = await take_lease(
            self.leases,
            self.lease_name,
            self.node_id,
            self.settings.lease_ttl,
            wait=wait,
            min_epoch=min_epoch,
        )
        if lease is None:
            current = await self.leases.current(self.lease_name)
            error = ExecutionNotOwned(self.execution_id, self.node_id)
            # Who holds it instead (the errors module has no field for it yet).
            error.current_holder = None if current is None else current.holder  # type: ignore[attr-defined]
            error.current_epoch = None if current is None else current.epoch  # type: ignore[attr-defined]
            raise error
        self._lease, self._lost, self._resync = lease, None, False
        return lease

    async def _take_ownership(self) -> ExecutionState:
        marker = Envelope(
            execution_id=self.execution_id,
            pipeline_id=None if self._state is None else self._state.pipeline_id,
            sequence=None,
            epoch=self.epoch,
            payload=ExecutionOwnershipTaken(epoch=self.epoch, node_id=self.node_id),
            producer=self.node_id,
        )
        [position] = await self._append([marker])
        await self.read_model.wait_for(position, self.settings.read_model_timeout)
        state = await self.read_model.load_execution(self.execution_id)
        if state is None:
            raise ExecutionNotFound(self.execution_id)
        if state.epoch != self.epoch:
            current = await self.leases.current(self.lease_name)
            ours = current is not None and (current.holder, current.epoch) == (
                self.node_id,
                self.epoch,
            )
            if ours and state.epoch > self.epoch:
                raise EpochBelowLog(state.epoch)
            raise LeaseLost(
                self.lease_name,
                self.node_id,
                self.epoch,
                current_holder=None if current is None else current.holder,
                current_epoch=state.epoch,
            )
        self._check_writable()
        self._state, self._resync = state, False
        log.info(
            "execution %s taken over by %s at epoch %s (last sequence %s, %s)",
            self.execution_id,
            self.node_id,
            self.epoch,
            state.last_sequence,
            position.token(),
        )
        return state

    async def _drop_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None and self._lost is None:
            await self.leases.release(lease)

    def _start_renewal(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.create_task(
                self._renew_forever(), name=f"renew {self.lease_name}"
            )

    async def _renew_forever(self) -> None:
        """Renew every ``renew_every``; on a transient failure retry until the local
        deadline, then (or on ``LeaseLost``, or anything unexpected) mark the lease lost."""
        loop = asyncio.get_running_loop()
        pause = self.settings.renew_every
        outage = Outage(f"execution {self.execution_id}: renewing its lease, PostgreSQL", log)
        while True:
            await asyncio.sleep(min(pause, max(0.0, self._valid_until - loop.time())))
            lease = self._lease
            if lease is None or self._lost is not None:
                return
            started = loop.time()
            try:
                if started >= self._valid_until:
                    raise LeaseLost(lease.name, lease.holder, lease.epoch)
                async with asyncio.timeout_at(self._valid_until):
                    renewed = await self.leases.renew(lease)
            except TRANSIENT_ERRORS as exc:  # retried until the local deadline, logged once
                outage.failed(exc)
                pause = min(1.0, self.settings.renew_every)
                continue
            except LeaseLost as exc:
                self._lose(exc)
                return
            except Exception as exc:
                log.exception(
                    "execution %s: renewing %s failed unexpectedly", self.execution_id, lease.name
                )
                self._lose(LeaseLost(lease.name, lease.holder, lease.epoch), cause=exc)
                return
            outage.recovered()
            pause = self.settings.renew_every
            if self._lease is not None and renewed.epoch == self._lease.epoch:
                self._lease = renewed
                self._valid_until = started + renewed.ttl - default_margin(renewed.ttl)

    def _lose(self, error: LeaseLost, *, cause: BaseException | None = None) -> None:
        error.__cause__ = cause
        if self._lost is None:
            record_lease_lost()
        self._lost = error
        log.warning("execution %s: %s; refusing further commands", self.execution_id, error)

    def _check_writable(self) -> None:
        if self._lost is not None:
            raise self._lost
        lease = self._lease
        if lease is None:
            raise ExecutionNotOwned(self.execution_id, self.node_id)
        if asyncio.get_running_loop().time() >= self._valid_until:
            self._lose(LeaseLost(lease.name, lease.holder, lease.epoch))
            raise LeaseLost(lease.name, lease.holder, lease.epoch)

    # --- commands ----------------------------------------------------------------------

    async def execute(self, command: Command, **ids: str | None) -> Position:
        """Decide ``command`` and append its events; the position of the last one.

        ``ids`` may set ``correlation_id`` / ``causation_id`` on the events.
        """
        return (await self.execute_many([command], **ids))[-1]

    async def execute_many(self, commands: Sequence[Command], **ids: str | None) -> list[Position]:
        """All or nothing: decide every command over the running state, then one
        ``append_batch``. One position per command (its last event's)."""
        from orchestrator.commands.together import execute_together  # it drives writers

        [positions] = await execute_together([(self, commands)], **ids)
        return positions

    async def encode(self, command: Command) -> Command:
        """The command's plain user data encoded (checkpoint data as a delta where it can)."""
        command = await encode_checkpoint(command, self)
        encoded: dict[str, UserData] = {}
        for name in command.user_data_fields:
            value = getattr(command, name)
            if value is not None and not isinstance(value, UserData):
                encoded[name] = await encode_value(
                    value, self.blob_store, self.settings.user_data, scope=self.execution_id
                )
        return replace(command, **encoded) if encoded else command

    async def prepare(self, commands: Sequence[Command], **ids: str | None) -> Prepared:
        """Validate ``commands`` over the running state; call with :attr:`lock` held."""
        self._check_writable()
        if self._resync:
            await self._take_over(drop=False)
        state = self.state
        envelopes: list[Envelope] = []
        per_command: list[int] = []

        stamp = self._stamp(**ids)
        for command in commands:
            encoded = await self.encode(command)
            if isinstance(encoded, CreateExecution):
                raise InvalidCommand(
                    self.execution_id,
                    f"execution {self.execution_id}",
                    state.status,
                    "CreateExecution",
                    "the execution already exists",
                )
            with span(
                "orchestrator.decide",
                execution_id=self.execution_id,
                command=type(encoded).__name__,
                sequence=state.last_sequence,
            ):
                batch, after = decide_in(state, encoded, stamp)
            assert after is not None  # an existing execution stays one
            state = after
            envelopes.extend(batch)
            per_command.append(len(batch))
        return Prepared(self, envelopes, state, per_command)

    def commit(self, prepared: Prepared, positions: Sequence[Position]) -> list[Position]:
        """Adopt the state of an appended batch; one position per command."""
        self._state = prepared.state
        if positions:
            self.last_position = positions[-1]
        out: list[Position] = []
        end = 0
        for count in prepared.per_command:  # decide returns at least one event per command
            end += count
            out.append(positions[end - 1])
        return out

    def _stamp(self, **ids: str | None) -> Stamp:
        """This writer's envelopes (epoch, producer, time, ``ids``) for decided payloads."""
        return lambda now, payloads: self._envelopes(now, payloads, **ids)

    def _envelopes(
        self,
        state: ExecutionState | None,
        payloads: Sequence[Payload],
        *,
        pipeline_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> list[Envelope]:
        first = 1 if state is None else state.last_sequence + 1
        return [
            Envelope(
                execution_id=self.execution_id,
                pipeline_id=pipeline_id if state is None else state.pipeline_id,
                sequence=first + i,
                epoch=self.epoch,
                payload=payload,
                producer=self.node_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
            for i, payload in enumerate(payloads)
        ]

    async def _append(self, envelopes: Sequence[Envelope]) -> list[Position]:
        self._check_writable()
        try:
            positions = await self.log.append_batch(envelopes, self.topic)
        except BaseException:
            self._resync = True
            raise
        if positions:
            self.last_position = positions[-1]
        return positions
