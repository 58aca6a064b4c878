"""Apache Kafka in KRaft mode, one node that is both broker and controller.

Run straight from the Maven Central jars (`ensure_kafka_jars`) with `java -cp
'libs/*' kafka.Kafka`, which is what `kafka-server-start.sh` does. The quorum is
static (`controller.quorum.voters`), so a data directory formatted once can be
restarted on different ports. Settings are those a single node needs
(replication factor 1 for internal topics) plus what makes tests fast (no initial
rebalance delay) and strict (no topic auto-creation: code must create its topics).
The JVM reuses a class-data-sharing archive after the first run (`_jvm_cds`).
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from orchestrator.events import KafkaSecurity

from ._errors import ToolMissingError
from ._jvm_cds import CdsArchive
from ._kafka import KafkaServer
from ._kafka_jars import KAFKA_VERSION, ensure_kafka_jars
from ._kafka_sasl import ScramUsers
from ._ports import LOOPBACK, free_ports
from ._process import ManagedProcess, run_to_completion

_NODE_ID = 1

# Console output is redirected to the log file by ManagedProcess.
_LOG4J2 = """\
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.metadata.name = org.apache.kafka.metadata
logger.metadata.level = WARN
"""


@dataclass(frozen=True, slots=True)
class ClusterMember:
    """This node's place in a multi-node KRaft cluster: its id and ports, the shared
    cluster id and voter list, and the replication of the internal topics."""

    node_id: int
    port: int
    controller_port: int
    cluster_id: str
    voters: str
    internal_replication: int


def _cluster_id() -> str:
    """A random Kafka cluster id (base64url of a UUID, not starting with '-' as Kafka requires)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class ApacheKafkaServer(KafkaServer):
    """Apache Kafka (default 4.1.1) from its jars; idempotent and transactional producers work.

    Needs Java 17+ on PATH, and Maven the first time (to download the jars).
    """

    supports_idempotence: ClassVar[bool] = True

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        kafka_version: str = KAFKA_VERSION,
        libs_dir: Path | None = None,
        java: str = "java",
        heap: str = "512m",
        properties: Mapping[str, str] | None = None,
        jvm_options: Sequence[str] = (),
        class_data_sharing: bool = True,
        startup_timeout: float = 120.0,
        stop_grace: float = 20.0,
        node_id: int = _NODE_ID,
        cluster: ClusterMember | None = None,
        sasl: ScramUsers | None = None,
    ) -> None:
        """``cluster`` makes this node one of several (see ``_kafka_cluster``); ``sasl``
        makes clients log in with SCRAM and obey ACLs (see ``_kafka_sasl``)."""
        if sasl is not None and cluster is not None:
            raise ValueError("a SASL devstack broker is a single node, not a cluster member")
        super().__init__(data_dir, startup_timeout=startup_timeout, stop_grace=stop_grace)
        self.node_id = node_id if cluster is None else cluster.node_id
        self.cluster = cluster
        self.sasl = sasl
        self._version = kafka_version
        self.libs_dir = libs_dir
        self.java = java
        self.heap = heap
        self.extra_properties = dict(properties or {})
        self.jvm_options = list(jvm_options)
        self.class_data_sharing = class_data_sharing
        self._controller_port: int | None = None
        self._cds: CdsArchive | None = None
        if cluster is not None:
            self._port, self._controller_port = cluster.port, cluster.controller_port

    @property
    def version(self) -> str:
        return self._version

    @property
    def description(self) -> str:
        secured = f", SASL {self.sasl.security().sasl_mechanism} + ACLs" if self.sasl else ""
        return f"Apache Kafka {self._version} (jars{secured})"

    @property
    def client_security(self) -> KafkaSecurity:
        return self.sasl.security() if self.sasl is not None else super().client_security

    def server_properties(self) -> dict[str, str]:
        """The broker's server.properties for the ports picked at start."""
        assert self._port is not None and self._controller_port is not None
        node, rf = self.node_id, 1 if self.cluster is None else self.cluster.internal_replication
        voters = (
            f"{node}@{LOOPBACK}:{self._controller_port}"
            if self.cluster is None
            else self.cluster.voters
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://{LOOPBACK}:{self._port},CONTROLLER://{LOOPBACK}:{self._controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self._port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft-logs"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min(2, rf)),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(min(2, rf)),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        if self.sasl is not None:
            props.update(self.sasl.server_properties(self._port, self._controller_port))
        props.update(self.extra_properties)
        return props

    def _java_path(self) -> str:
        found = shutil.which(self.java)
        if found is None:
            raise ToolMissingError(self.java, "Apache Kafka needs Java 17 or newer on PATH")
        return found

    async def _launch(self) -> ManagedProcess:
        java = self._java_path()
        libs = self.libs_dir
        if libs is None:
            libs = await asyncio.to_thread(ensure_kafka_jars, version=self._version)
        if self._port is None or self._controller_port is None:  # a restart keeps them
            self._port, self._controller_port = free_ports(2)
        config = self.data_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        jvm = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{min(256, _megabytes(self.heap))}m",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            *self.jvm_options,
        ]
        classpath = ["-cp", f"{libs}/*"]
        if not (self.data_dir / "kraft-logs" / "meta.properties").exists():
            cid = _cluster_id() if self.cluster is None else self.cluster.cluster_id
            fmt = ["kafka.tools.StorageTool", "format", "-t", cid, "-c", str(config)]
            fmt += self.sasl.format_args() if self.sasl is not None else []
            await run_to_completion(
                self.name, [*jvm, *classpath, *fmt], log_path=self.log_path, time_limit=60
            )
        self._cds = CdsArchive(java, libs) if self.class_data_sharing else None
        cds = self._cds.jvm_options() if self._cds is not None else []
        return self._spawn([*jvm, *cds, *classpath, "kafka.Kafka", str(config)])

    async def stop(self) -> None:
        process = self._process
        await super().stop()
        cds, self._cds = self._cds, None
        if cds is not None:
            cds.finish(clean_exit=process is not None and not process.killed)


def _megabytes(size: str) -> int:
    """'512m' -> 512, '2g' -> 2048 (JVM size syntax)."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    suffix = size[-1].lower()
    return int(float(size[:-1]) * units[suffix]) if suffix in units else int(size) // 2**20
