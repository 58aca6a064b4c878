"""etcd on loopback: Debian's ``etcd`` (the ``etcd-server`` package), one member or a cluster.

A member listens for clients and peers on 127.0.0.1 only, with its data in its own
directory. A cluster is ``members`` such processes started together with a static
``--initial-cluster`` (three members survive one down: the quorum is two). Ready
means a write went through the quorum (``etcdctl put``), not just an open port.

    async with EtcdCluster(members=3) as cluster:
        print(cluster.endpoints)       # ['127.0.0.1:a', '127.0.0.1:b', '127.0.0.1:c']
        await cluster.kill(2); await cluster.resume(2)
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Unpack

from ._errors import ToolMissingError
from ._group import ServerGroup
from ._ports import LOOPBACK, free_ports
from ._process import ManagedProcess
from ._service import Service, ServiceOptions

_INSTALL = "apt-get install etcd-server etcd-client"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ToolMissingError(name, _INSTALL)
    return found


@dataclass(frozen=True, slots=True)
class _Peers:
    """This member's name and the static cluster it joins."""

    name: str
    initial_cluster: str
    token: str


class EtcdServer(Service):
    """One etcd member on 127.0.0.1:<free port> (alone unless ``peers`` is given)."""

    name: ClassVar[str] = "etcd"
    default_startup_timeout: ClassVar[float] = 30.0
    default_stop_grace: ClassVar[float] = 3.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        ports: tuple[int, int] | None = None,
        peers: _Peers | None = None,
        **options: Unpack[ServiceOptions],
    ) -> None:
        super().__init__(data_dir, **options)
        if ports is None:
            client_port, peer_port = free_ports(2)
            ports = (client_port, peer_port)
        self._client_port, self._peer_port = ports
        self._peers = peers

    @property
    def endpoint(self) -> str:
        """``host:port`` of the client listener."""
        return f"{LOOPBACK}:{self._client_port}"

    @property
    def endpoints(self) -> list[str]:
        return [self.endpoint]

    @property
    def description(self) -> str:
        return "etcd (Debian's etcd-server)"

    def _peer_url(self) -> str:
        return f"http://{LOOPBACK}:{self._peer_port}"

    async def _launch(self) -> ManagedProcess:
        member = self._peers.name if self._peers else "default"
        initial = self._peers.initial_cluster if self._peers else f"{member}={self._peer_url()}"
        data = self.data_dir / "member-data"
        argv = [
            _tool("etcd"),
            f"--name={member}",
            f"--data-dir={data}",
            f"--listen-client-urls=http://{LOOPBACK}:{self._client_port}",
            f"--advertise-client-urls=http://{LOOPBACK}:{self._client_port}",
            f"--listen-peer-urls={self._peer_url()}",
            f"--initial-advertise-peer-urls={self._peer_url()}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-token={self._peers.token if self._peers else 'devstack'}",
            # A restarted member finds its data dir and rejoins; "new" only applies once.
            "--initial-cluster-state=new",
            "--heartbeat-interval=100",
            "--election-timeout=1000",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        # A member whose peers already stopped waits for a quorum that will not come
        # back; SIGKILL after the grace is safe (etcd fsyncs its WAL on every commit).
        return self._spawn(argv, kill_expected=True)

    async def _probe(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            _tool("etcdctl"),
            f"--endpoints={self.endpoint}",
            "--command-timeout=2s",
            "put",
            "devstack/ready",
            "1",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"ETCDCTL_API": "3"},
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise ConnectionError(f"etcd not ready: {err.decode(errors='replace').strip()}")


class EtcdCluster(ServerGroup):
    """``members`` etcd members on loopback forming one cluster."""

    name: ClassVar[str] = "etcd"

    def __init__(self, data_dir: Path | str | None = None, *, members: int = 3) -> None:
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        super().__init__(data_dir, "etcd-cluster")
        ports = free_ports(2 * members)
        names = [f"m{n + 1}" for n in range(members)]
        initial = ",".join(
            f"{name}=http://{LOOPBACK}:{ports[2 * n + 1]}" for n, name in enumerate(names)
        )
        token = f"devstack-{ports[0]}"
        self.members = [
            EtcdServer(
                self.data_dir / name,
                ports=(ports[2 * n], ports[2 * n + 1]),
                peers=_Peers(name=name, initial_cluster=initial, token=token),
            )
            for n, name in enumerate(names)
        ]
        self.log_path = self.members[0].log_path

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    @property
    def description(self) -> str:
        return f"etcd (Debian's etcd-server), {len(self.members)}-member cluster"

    async def kill(self, member: int) -> None:
        """SIGKILL member ``member`` (1..n); its data and ports stay for ``resume``."""
        await self.members[member - 1].kill()

    async def resume(self, member: int) -> None:
        """Start a killed member again in place; it rejoins from its data directory."""
        await self.members[member - 1].resume()

    @property
    def _parts(self) -> list[Any]:
        return list(self.members)

    def log_tail(self, lines: int = 50) -> str:
        return "\n".join(f"[{m.data_dir.name}] {m.log_tail(lines)}" for m in self.members)
