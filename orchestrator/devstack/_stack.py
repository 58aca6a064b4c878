"""Start what the environment does not provide: Kafka, PostgreSQL, S3 (and Redis) together.

Services named by env vars (see `_endpoints`) are used as they are; the others
are started locally, concurrently (Kafka's JVM takes longest, the rest start in
its shadow), each in its own subdirectory of `data_dir`. A failed or cancelled
start stops whatever had already come up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Literal, ParamSpec, cast, get_args

from orchestrator.events import Resource

from ._apache_kafka import ApacheKafkaServer
from ._endpoints import KAFKA_BOOTSTRAP_SERVERS, ServiceEndpoints
from ._errors import DevstackError
from ._kafka import KafkaServer
from ._kafka_cluster import KafkaCluster
from ._kafka_jars import KAFKA_VERSION, default_kafka_cache_dir, kafka_jars_ready
from ._kafka_sasl import ScramUsers, grant_product_acls
from ._postgres import PostgresServer
from ._prometheus import PrometheusServer
from ._redis import RedisCluster, RedisServer
from ._s3 import S3Server
from ._service import Service
from ._tansu import TANSU_LIMITS, TansuServer

log = logging.getLogger(__name__)
P = ParamSpec("P")

KafkaChoice = Literal["auto", "apache", "tansu"]
#: Env var that forces a broker for locally started Kafka: auto | apache | tansu.
DEVSTACK_KAFKA = "ORCHESTRATOR_DEVSTACK_KAFKA"
#: The user a SASL devstack's endpoints log in as (granted the product's ACLs).
SASL_APP_USER = "app"


_SERVICES = ("kafka", "postgres", "s3", "redis", "redis_cluster", "prometheus")
"""The services a stack can start, in ``require``'s parameter order."""


def choose_kafka(
    data_dir: Path | str | None = None, *, prefer: KafkaChoice = "auto"
) -> KafkaServer:
    """Apache Kafka when Java can run it, else Tansu (with a warning naming its limits).

    "Can run it" means `java` is on PATH and the jars are cached or `mvn` can fetch them.
    """
    if prefer == "auto":
        missing = _apache_kafka_missing()
        if missing is not None:
            log.warning("%s, so using Tansu instead of Apache Kafka (%s)", missing, TANSU_LIMITS)
            return TansuServer(data_dir)
    if prefer == "tansu":
        return TansuServer(data_dir)
    return ApacheKafkaServer(data_dir)


def describe_kafka(environ: Mapping[str, str] | None = None) -> str:
    """Which Kafka a DevStack would use, without starting anything (for logs and headers)."""
    environ = os.environ if environ is None else environ
    external = environ.get(KAFKA_BOOTSTRAP_SERVERS)
    if external:
        return f"external Kafka at {external} ({KAFKA_BOOTSTRAP_SERVERS})"
    prefer = _kafka_choice(environ, None)
    if prefer == "tansu" or (prefer == "auto" and _apache_kafka_missing() is not None):
        return f"Tansu ({TANSU_LIMITS})"
    return f"Apache Kafka {KAFKA_VERSION} (jars)"


def _apache_kafka_missing() -> str | None:
    if shutil.which("java") is None:
        return "java is not on PATH"
    if shutil.which("mvn") is None and not kafka_jars_ready(default_kafka_cache_dir()):
        return "mvn is not on PATH and the Kafka jars are not cached"
    return None


def _kafka_choice(environ: Mapping[str, str], given: KafkaChoice | None) -> KafkaChoice:
    choice = given or environ.get(DEVSTACK_KAFKA) or "auto"
    if choice not in get_args(KafkaChoice):
        raise DevstackError(f"{DEVSTACK_KAFKA} must be auto, apache or tansu, not {choice!r}")
    return cast(KafkaChoice, choice)


#: What an external Kafka brings besides its address; an external S3's settings.
_KAFKA_FIELDS = (
    "kafka_bootstrap",
    "kafka_supports_idempotence",
    "kafka_description",
    "kafka_security",
    "kafka_password_file",
)
_S3_FIELDS = ("endpoint_url", "bucket", "access_key", "secret_key", "region")


class DevStack(Resource):
    """Kafka, PostgreSQL and S3 for tests and local runs; env vars point at external ones.

    `start()` brings up what the constructor asked for; `require()` adds services
    to a running stack (the test harness starts everything the collected tests
    need at once, and still serves a fixture nobody announced).
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        kafka: bool = True,
        postgres: bool = True,
        s3: bool = True,
        kafka_impl: KafkaChoice | None = None,
        environ: Mapping[str, str] | None = None,
        kafka_brokers: int = 1,
        kafka_sasl: bool = False,
        redis: bool = False,
        redis_cluster: bool = False,
        redis_appendonly: bool = True,
        redis_snapshot_interval: int | None = 300,
        prometheus: bool = False,
    ) -> None:
        """``kafka_brokers`` > 1 starts a KRaft cluster of that many Apache Kafka nodes.
        ``kafka_sasl`` starts Apache Kafka with SCRAM-SHA-512 users and ACLs: ``admin``
        (super user), ``app`` (granted what the product needs; the endpoints log in as
        it) and ``guest`` (no ACL); ``self.scram`` holds their passwords.
        ``redis`` starts a standalone Redis, ``redis_cluster`` a 3-node Redis cluster, both
        with the seed's ``persistence`` (``redis_appendonly``, ``redis_snapshot_interval``)."""
        environ = os.environ if environ is None else environ
        if kafka_brokers < 1:
            raise DevstackError(f"kafka_brokers must be >= 1, not {kafka_brokers}")
        if kafka_sasl and kafka_brokers > 1:
            raise DevstackError("--kafka-sasl starts one broker, not a cluster")
        self.scram = ScramUsers.generate(SASL_APP_USER, "guest") if kafka_sasl else None
        self.kafka_brokers = kafka_brokers
        self.data_dir = None if data_dir is None else Path(data_dir).expanduser().resolve()
        self.external = ServiceEndpoints.from_env(environ)
        self.kafka_impl = _kafka_choice(environ, kafka_impl)
        if kafka_sasl and self.kafka_impl == "tansu":
            raise DevstackError("a SASL devstack broker needs Apache Kafka, not Tansu")
        if kafka_brokers > 1 and self.kafka_impl == "tansu":
            raise DevstackError("a multi-broker cluster needs Apache Kafka, not Tansu")
        wanted = (kafka, postgres, s3, redis, redis_cluster, prometheus)
        self._wanted = dict(zip(_SERVICES, wanted, strict=True))
        self._used = dict.fromkeys(self._wanted, False)
        self.redis_appendonly = redis_appendonly
        self.redis_snapshot_interval = redis_snapshot_interval
        #: Servers this stack started (services given by env vars are not here).
        self.kafka: KafkaServer | None = None
        self.postgres: PostgresServer | None = None
        self.s3: S3Server | None = None
        self.redis: RedisServer | None = None
        self.redis_cluster: RedisCluster | None = None
        #: Optional (``prometheus=True``): scrape targets are set on it, ``set_targets``.
        self.prometheus: PrometheusServer | None = None
        self._endpoints = ServiceEndpoints()
        self._password_file: str | None = None

    def _subdir(self, name: str) -> Path | None:
        return None if self.data_dir is None else self.data_dir / name

    @property
    def servers(self) -> list[Service]:
        """The servers started locally."""
        cluster = cast(Service | None, self.redis_cluster)  # same interface (duck-typed)
        found = (self.kafka, self.postgres, self.s3, self.redis, cluster, self.prometheus)
        return [s for s in found if s is not None]

    @property
    def endpoints(self) -> ServiceEndpoints:
        """Where the services in use are (fields of services not in use are None)."""
        return self._endpoints

    async def start(self) -> ServiceEndpoints:
        """Start what the constructor asked for; return where everything is."""
        return await self.require(**self._wanted)

    async def require(
        self,
        *,
        kafka: bool = False,
        postgres: bool = False,
        s3: bool = False,
        redis: bool = False,
        redis_cluster: bool = False,
        prometheus: bool = False,
    ) -> ServiceEndpoints:
        """Make these services available (external or started here), concurrently; idempotent."""
        new: list[Service] = []
        if kafka and not self._used["kafka"] and self.external.kafka_bootstrap is None:
            if self.kafka_brokers > 1:  # same interface as one server (duck-typed)
                cluster = KafkaCluster(self._subdir("kafka"), brokers=self.kafka_brokers)
                self.kafka = cast(KafkaServer, cluster)
            elif self.scram is not None:
                self.kafka = ApacheKafkaServer(self._subdir("kafka"), sasl=self.scram)
            else:
                self.kafka = choose_kafka(self._subdir("kafka"), prefer=self.kafka_impl)
            new.append(self.kafka)
        if postgres and not self._used["postgres"] and self.external.database_url is None:
            self.postgres = PostgresServer(self._subdir("postgres"))
            new.append(self.postgres)
        if s3 and not self._used["s3"] and self.external.s3_endpoint_url is None:
            self.s3 = S3Server(self._subdir("s3"))
            new.append(self.s3)
        if redis and not self._used["redis"] and self.external.redis_url is None:
            self.redis = RedisServer(
                self._subdir("redis"),
                appendonly=self.redis_appendonly,
                snapshot_interval=self.redis_snapshot_interval,
            )
            new.append(self.redis)
        if (
            redis_cluster
            and not self._used["redis_cluster"]
            and self.external.redis_cluster_url is None
        ):
            self.redis_cluster = RedisCluster(
                self._subdir("redis-cluster"),
                appendonly=self.redis_appendonly,
                snapshot_interval=self.redis_snapshot_interval,
            )
            new.append(cast(Service, self.redis_cluster))
        if prometheus and not self._used["prometheus"]:
            self.prometheus = PrometheusServer(self._subdir("prometheus"))
            new.append(self.prometheus)
        try:
            results = await asyncio.gather(
                *(server.start() for server in new), return_exceptions=True
            )
        except BaseException:  # cancelled: each server stopped itself; stop the ones that rose
            await self._forget(new)
            raise
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self._forget(new)
            raise errors[0]
        if self.scram is not None and self.kafka in new:
            await self._grant(new)
        asked = (kafka, postgres, s3, redis, redis_cluster, prometheus)
        for name, wanted in zip(_SERVICES, asked, strict=True):
            self._used[name] = self._used[name] or wanted
        self._endpoints = self._combine()
        return self._endpoints

    async def _grant(self, new: list[Service]) -> None:
        """Give the ``app`` user its ACLs and write its password file."""
        assert self.kafka is not None and self.scram is not None
        try:
            await grant_product_acls(
                self.kafka.bootstrap_servers, self.kafka.client_security, SASL_APP_USER
            )
        except BaseException:
            await self._forget(new)
            raise
        self._password_file = str(
            self.scram.write_password_file(self.kafka.data_dir, SASL_APP_USER)
        )

    async def _forget(self, servers: list[Service]) -> None:
        await asyncio.gather(*(server.stop() for server in servers))
        self.kafka = None if self.kafka in servers else self.kafka
        self.postgres = None if self.postgres in servers else self.postgres
        self.s3 = None if self.s3 in servers else self.s3
        self.redis = None if self.redis in servers else self.redis
        if cast(Service | None, self.redis_cluster) in servers:
            self.redis_cluster = None
        self.prometheus = None if self.prometheus in servers else self.prometheus

    def _combine(self) -> ServiceEndpoints:
        ext, used = self.external, self._used
        endpoints = ServiceEndpoints()
        if used["kafka"]:
            endpoints = replace(endpoints, **{f: getattr(ext, f) for f in _KAFKA_FIELDS})
        if self.kafka is not None:
            endpoints = replace(
                endpoints,
                kafka_bootstrap=self.kafka.bootstrap_servers,
                kafka_supports_idempotence=self.kafka.supports_idempotence,
                kafka_description=self.kafka.description,
            )
            if self.scram is not None:
                endpoints = replace(
                    endpoints,
                    kafka_security=self.scram.security(SASL_APP_USER),
                    kafka_password_file=self._password_file,
                )
        if used["postgres"]:
            pg_url = self.postgres.dsn if self.postgres is not None else ext.database_url
            endpoints = replace(endpoints, database_url=pg_url)
        if self.s3 is not None or used["s3"]:
            s3 = self.s3
            endpoints = replace(
                endpoints,
                **{
                    f"s3_{f}": getattr(s3, f) if s3 is not None else getattr(ext, f"s3_{f}")
                    for f in _S3_FIELDS
                },
            )
        if used["redis"]:
            url = self.redis.url if self.redis is not None else ext.redis_url
            endpoints = replace(endpoints, redis_url=url)
        if used["redis_cluster"]:
            cluster = self.redis_cluster
            url = cluster.url if cluster is not None else ext.redis_cluster_url
            endpoints = replace(endpoints, redis_cluster_url=url)
        return endpoints

    async def stop(self) -> None:
        """Stop every local server, all at once (idempotent)."""
        servers = self.servers
        self._used = dict.fromkeys(self._used, False)
        self._endpoints = ServiceEndpoints()
        await self._forget(servers)

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        """The last lines of each local server's log, by service name."""
        return {server.name: server.log_tail(lines) for server in self.servers}

    def summary(self) -> str:
        """One line per service in use: what it is, where, how long it took to start."""
        rows: list[str] = []
        ep = self._endpoints
        for name, server, where in (
            ("kafka", self.kafka, ep.kafka_bootstrap),
            ("postgres", self.postgres, ep.database_url),
            ("s3", self.s3, ep.s3_endpoint_url),
            ("redis", self.redis, ep.redis_url),
            ("redis-cluster", cast(Service | None, self.redis_cluster), ep.redis_cluster_url),
            ("prometheus", self.prometheus, self.prometheus and self.prometheus.url),
        ):
            if where is None:
                continue
            if server is None:
                rows.append(f"{name}: external at {where}")
                continue
            what = server.description
            took = f"{server.startup_seconds:.1f}s" if server.startup_seconds else "?"
            rows.append(f"{name}: {what} at {where} (ready in {took}, log {server.log_path})")
        return "\n".join(rows)


def _endpoints_of(
    stack: Callable[P, DevStack],
) -> Callable[P, AbstractAsyncContextManager[ServiceEndpoints]]:
    @asynccontextmanager
    async def endpoints(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[ServiceEndpoints]:
        """``async with local_services(...) as endpoints``: a ``DevStack`` (same arguments)
        for the block; the services the env vars name are used, the missing ones started."""
        async with stack(*args, **kwargs) as running:
            yield running.endpoints

    return endpoints


local_services = _endpoints_of(DevStack)
