"""A real multi-broker Apache Kafka cluster on loopback, in KRaft mode.

Every node is both broker and controller, so three nodes make a 3-voter controller
quorum (it survives one node down; with two down the quorum is lost and so is
writing, which is what a fault test wants to see). Each node is an
``ApacheKafkaServer`` with its own data directory and ports, formatted with the
shared cluster id; internal topics (consumer offsets, transactions) are replicated
to every node (``min.insync`` 2), so groups and idempotent producers survive a broker.

    async with KafkaCluster(brokers=3) as cluster:
        print(cluster.bootstrap_servers)      # 127.0.0.1:a,127.0.0.1:b,127.0.0.1:c
        await cluster.kill(1); await cluster.resume(1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ._apache_kafka import ApacheKafkaServer, ClusterMember, _cluster_id
from ._group import ServerGroup
from ._kafka_jars import KAFKA_VERSION
from ._ports import LOOPBACK, free_ports


class KafkaCluster(ServerGroup):
    """``brokers`` Apache Kafka nodes (broker + controller each) on loopback."""

    name: ClassVar[str] = "kafka"
    supports_idempotence: ClassVar[bool] = True

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        brokers: int = 3,
        heap: str = "256m",
        startup_timeout: float = 180.0,
    ) -> None:
        if brokers < 1:
            raise ValueError(f"brokers must be >= 1, got {brokers}")
        super().__init__(data_dir, "kafka-cluster")
        self.log_path = self.data_dir / "node-1" / "kafka.log"
        ports = free_ports(2 * brokers)
        cluster_id = _cluster_id()
        voters = ",".join(f"{n + 1}@{LOOPBACK}:{ports[2 * n + 1]}" for n in range(brokers))
        self.nodes = [
            ApacheKafkaServer(
                self.data_dir / f"node-{n + 1}",
                heap=heap,
                class_data_sharing=False,  # several JVMs would write one archive at once
                startup_timeout=startup_timeout,
                cluster=ClusterMember(
                    node_id=n + 1,
                    port=ports[2 * n],
                    controller_port=ports[2 * n + 1],
                    cluster_id=cluster_id,
                    voters=voters,
                    internal_replication=min(3, brokers),
                ),
            )
            for n in range(brokers)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    @property
    def version(self) -> str:
        return KAFKA_VERSION

    @property
    def description(self) -> str:
        return f"Apache Kafka {KAFKA_VERSION} (jars), {len(self.nodes)}-node KRaft cluster"

    def node_of(self, broker_id: int) -> ApacheKafkaServer:
        """The node whose ``node.id`` (broker id) is ``broker_id``."""
        return self.nodes[broker_id - 1]

    async def kill(self, broker_id: int) -> None:
        """SIGKILL one node (broker id 1..n); its data and ports stay for ``resume``."""
        await self.node_of(broker_id).kill()

    async def resume(self, broker_id: int) -> None:
        """Start a killed node again in place. With the quorum lost it cannot become
        ready alone: resume the nodes together (``asyncio.gather``)."""
        await self.node_of(broker_id).resume()

    @property
    def _parts(self) -> list[Any]:
        return list(self.nodes)

    def log_tail(self, lines: int = 50) -> str:
        return "\n".join(
            f"--- node {node.node_id} ---\n{node.log_tail(lines)}" for node in self.nodes
        )
