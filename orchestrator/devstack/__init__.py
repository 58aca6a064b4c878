"""Local Kafka, PostgreSQL, S3, Redis, etcd (and Prometheus) for tests and `services up`.

Each server is an async context manager on free loopback ports that waits until
it serves real requests, keeps its log in a file (`log_path`, `log_tail()`), and
stops cleanly (no orphan processes)::

    async with ApacheKafkaServer() as kafka:
        print(kafka.bootstrap_servers)

    async with local_services() as endpoints:   # env vars name external services
        print(endpoints.as_env())
"""

from typing import TYPE_CHECKING

from orchestrator.events import lazy_exports

from ._endpoints import KafkaEndpoint, S3Endpoint, ServiceEndpoints
from ._errors import DevstackError, ServiceStartError, ToolMissingError
from ._s3 import DEFAULT_BUCKET

if TYPE_CHECKING:
    from ._apache_kafka import ApacheKafkaServer
    from ._databases import fresh_database
    from ._etcd import EtcdCluster, EtcdServer
    from ._kafka import KafkaServer, create_topic
    from ._kafka_cluster import KafkaCluster
    from ._kafka_jars import KAFKA_VERSION, default_kafka_cache_dir, ensure_kafka_jars
    from ._postgres import PostgresServer
    from ._prometheus import PrometheusServer
    from ._redis import RedisCluster, RedisServer
    from ._s3 import S3Server
    from ._service import Service
    from ._stack import (
        DEVSTACK_KAFKA,
        DevStack,
        KafkaChoice,
        choose_kafka,
        describe_kafka,
        local_services,
    )
    from ._tansu import TANSU_LIMITS, TansuServer

# The servers load on first use: a process that only reads endpoints from the
# environment (every production process) skips httpx, the server modules and their
# start-up code.
__getattr__ = lazy_exports(
    __name__,
    {
        "ApacheKafkaServer": "._apache_kafka",
        "fresh_database": "._databases",
        "EtcdCluster": "._etcd",
        "EtcdServer": "._etcd",
        "KafkaServer": "._kafka",
        "create_topic": "._kafka",
        "KafkaCluster": "._kafka_cluster",
        "KAFKA_VERSION": "._kafka_jars",
        "default_kafka_cache_dir": "._kafka_jars",
        "ensure_kafka_jars": "._kafka_jars",
        "PostgresServer": "._postgres",
        "PrometheusServer": "._prometheus",
        "RedisCluster": "._redis",
        "RedisServer": "._redis",
        "S3Server": "._s3",
        "Service": "._service",
        "DEVSTACK_KAFKA": "._stack",
        "DevStack": "._stack",
        "KafkaChoice": "._stack",
        "choose_kafka": "._stack",
        "describe_kafka": "._stack",
        "local_services": "._stack",
        "TANSU_LIMITS": "._tansu",
        "TansuServer": "._tansu",
    },
)

__all__ = [
    "DEFAULT_BUCKET",
    "DEVSTACK_KAFKA",
    "KAFKA_VERSION",
    "TANSU_LIMITS",
    "ApacheKafkaServer",
    "DevStack",
    "DevstackError",
    "EtcdCluster",
    "EtcdServer",
    "KafkaChoice",
    "KafkaCluster",
    "KafkaEndpoint",
    "KafkaServer",
    "PostgresServer",
    "PrometheusServer",
    "RedisCluster",
    "RedisServer",
    "S3Endpoint",
    "S3Server",
    "Service",
    "ServiceEndpoints",
    "ServiceStartError",
    "TansuServer",
    "ToolMissingError",
    "choose_kafka",
    "create_topic",
    "default_kafka_cache_dir",
    "describe_kafka",
    "ensure_kafka_jars",
    "fresh_database",
    "local_services",
]
