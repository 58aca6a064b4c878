"""Redis: Debian's `redis-server` on loopback, standalone or as a 3-node cluster.

The seed's `persistence` block is a server setting: where we start the server,
`aof_enabled` becomes `appendonly yes` (fsync on every write, so a SIGKILL loses
nothing acknowledged) and `snapshot_interval` becomes `save "<seconds> 1"` (an
RDB snapshot when at least one key changed in that many seconds). A cluster is
three `--cluster-enabled yes` nodes joined by `redis-cli --cluster create` with
no replicas; each node keeps its `nodes.conf` and AOF in its own directory, so a
killed node restarted in place rejoins with its slots and data.

    async with RedisServer() as redis:
        print(redis.url)                  # redis://127.0.0.1:<port>
    async with RedisCluster(nodes=3) as cluster:
        await cluster.kill(2); await cluster.resume(2)
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, ClassVar, Unpack

from ._errors import ServiceStartError, ToolMissingError
from ._group import ServerGroup
from ._ports import LOOPBACK, free_ports
from ._process import ManagedProcess, run_to_completion
from ._service import ExecutableOptions, ExecutableService

_HINT = "install Debian's redis-server package (apt-get install redis-server)"


def find_redis(tool: str = "redis-server") -> str:
    """The `redis-server` (or `redis-cli`) executable on PATH."""
    found = shutil.which(tool)
    if found is None:
        raise ToolMissingError(tool, _HINT)
    return found


async def redis_command(port: int, *args: str) -> str:
    """Send one command to 127.0.0.1:port and return its simple or bulk reply as text.

    Just enough RESP for readiness probes (PING, CLUSTER INFO), so the dev stack
    does not need the redis client installed. An error reply raises ConnectionError.
    """
    async with asyncio.timeout(2.0):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            parts = [f"*{len(args)}\r\n"]
            parts += [f"${len(a.encode())}\r\n{a}\r\n" for a in args]
            writer.write("".join(parts).encode())
            await writer.drain()
            line = (await reader.readline()).decode().rstrip("\r\n")
            if line.startswith("$"):
                size = int(line[1:])
                return "" if size < 0 else (await reader.readexactly(size + 2))[:-2].decode()
            if line.startswith("-") or not line:
                raise ConnectionError(f"redis replied {line!r}")
            return line[1:]
        finally:
            writer.close()


class RedisServer(ExecutableService):
    """One `redis-server` on 127.0.0.1:<free port>; a cluster node with ``cluster=True``."""

    name: ClassVar[str] = "redis"
    default_startup_timeout: ClassVar[float] = 30.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        appendonly: bool = True,
        snapshot_interval: int | None = 300,
        cluster: bool = False,
        **options: Unpack[ExecutableOptions],
    ) -> None:
        """``appendonly`` and ``snapshot_interval`` are the seed's ``persistence.aof_enabled``
        and ``persistence.snapshot_interval`` (None or 0: no RDB snapshots)."""
        super().__init__(data_dir, **options)
        self.appendonly = appendonly
        self.snapshot_interval = snapshot_interval
        self.cluster = cluster
        self._ports: list[int] = []

    @property
    def port(self) -> int:
        if not self._ports:
            raise RuntimeError("redis is not started")
        return self._ports[0]

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    @property
    def description(self) -> str:
        aof = "AOF on" if self.appendonly else "AOF off"
        role = "cluster node" if self.cluster else "standalone"
        return f"Redis ({role}, {aof})"

    def server_args(self) -> list[str]:
        """The persistence and networking flags this server runs with."""
        save = f"{self.snapshot_interval} 1" if self.snapshot_interval else ""
        args = [
            "--bind", LOOPBACK, "--port", str(self.port), "--dir", str(self.data_dir),
            "--protected-mode", "no", "--daemonize", "no", "--logfile", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always", "--save", save,
        ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes", "--cluster-port", str(self._ports[1]),
                "--cluster-config-file", str(self.data_dir / "nodes.conf"),
                "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
            ]  # fmt: skip
        return args

    def _find_binary(self) -> str:
        return find_redis()

    async def _launch(self) -> ManagedProcess:
        if not self._ports:  # a restart keeps its ports: clients reconnect to them
            self._ports = free_ports(2 if self.cluster else 1)
        return self._run(self.server_args())

    async def _probe(self) -> None:
        if await redis_command(self.port, "PING") != "PONG":
            raise ConnectionError("redis did not answer PING")


class RedisCluster(ServerGroup):
    """``nodes`` Redis cluster nodes on loopback, every slot assigned, no replicas."""

    name: ClassVar[str] = "redis-cluster"

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        nodes: int = 3,
        appendonly: bool = True,
        snapshot_interval: int | None = 300,
        startup_timeout: float = 60.0,
    ) -> None:
        if nodes < 3:
            raise ValueError(f"a Redis cluster needs at least 3 masters, got {nodes}")
        super().__init__(data_dir, "redis-cluster")
        self.log_path = self.data_dir / "cluster-create.log"
        self.startup_timeout = startup_timeout
        self.nodes = [
            RedisServer(
                self.data_dir / f"node-{n + 1}",
                appendonly=appendonly,
                snapshot_interval=snapshot_interval,
                cluster=True,
                startup_timeout=startup_timeout,
            )
            for n in range(nodes)
        ]

    @property
    def url(self) -> str:
        """The first node's URL: a cluster client discovers the others from it."""
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def description(self) -> str:
        return f"Redis {len(self.nodes)}-node cluster (no replicas)"

    async def _join(self) -> None:
        """Assign the slots and wait until each node reports cluster_state:ok."""
        argv = [find_redis("redis-cli"), "--cluster", "create"]
        argv += [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        argv += ["--cluster-replicas", "0", "--cluster-yes"]
        await run_to_completion(self.name, argv, log_path=self.log_path, time_limit=30.0)
        await self._wait_ok(asyncio.get_running_loop().time() + self.startup_timeout)

    async def _wait_ok(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        pending = [node for node in self.nodes if node.ready]
        while pending:
            node = pending[0]
            try:
                info = await redis_command(node.port, "CLUSTER", "INFO")
            except (OSError, ConnectionError, TimeoutError):
                info = ""
            if "cluster_state:ok" in info:
                pending.pop(0)
                continue
            if loop.time() > deadline:
                raise ServiceStartError(
                    self.name, f"node {node.port} not cluster_state:ok", node.log_path, info
                )
            await asyncio.sleep(0.2)

    async def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based); its data and ports stay for ``resume``."""
        await self.nodes[index].kill()

    async def resume(self, index: int) -> None:
        """Start a killed node again in place and wait until the cluster is whole again."""
        loop = asyncio.get_running_loop()
        await self.nodes[index].resume()
        await self._wait_ok(loop.time() + self.startup_timeout)

    @property
    def _parts(self) -> list[Any]:
        return list(self.nodes)

    def log_tail(self, lines: int = 50) -> str:
        return "\n".join(f"--- {node.log_path} ---\n{node.log_tail(lines)}" for node in self.nodes)
