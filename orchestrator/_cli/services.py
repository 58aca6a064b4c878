"""`orchestrator-state services`: local Kafka, PostgreSQL, S3 (and Redis) for development.

`services up` runs them in the foreground until Ctrl-C or SIGTERM. The `export`
lines go to stdout and everything else to stderr, so `services up > env.sh`
leaves a file a shell can `source`.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import cast

import typer
from rich.console import Console

from orchestrator.devstack import (
    DEVSTACK_KAFKA,
    KAFKA_VERSION,
    DevStack,
    DevstackError,
    EtcdCluster,
    EtcdServer,
    KafkaChoice,
    ServiceEndpoints,
    ensure_kafka_jars,
)
from orchestrator.events import cancel_and_wait

app = typer.Typer(help="Local Kafka, PostgreSQL and S3 on loopback.", no_args_is_help=True)


class KafkaImpl(StrEnum):
    auto = "auto"
    apache = "apache"
    tansu = "tansu"


@app.command("up")
def up(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Keep data here (kafka/, postgres/, s3/); default: a temp dir."
    ),
    kafka: KafkaImpl = typer.Option(
        KafkaImpl.auto,
        "--kafka",
        envvar=DEVSTACK_KAFKA,
        help="auto: Apache Kafka if Java is available, else Tansu.",
    ),
    kafka_brokers: int = typer.Option(
        1, "--kafka-brokers", min=1, help="Brokers: 3 starts a 3-node KRaft cluster (Apache)."
    ),
    kafka_sasl: bool = typer.Option(
        False,
        "--kafka-sasl",
        help="Apache Kafka with SASL/SCRAM-SHA-512 and ACLs; exports log in as user 'app'.",
    ),
    redis: bool = typer.Option(
        False, "--redis", help="Also start a standalone Redis (exports REDIS_URL)."
    ),
    redis_cluster: bool = typer.Option(
        False,
        "--redis-cluster",
        help="Also start a 3-node Redis cluster, no replicas (exports REDIS_CLUSTER_URL).",
    ),
    redis_aof: bool = typer.Option(
        True,
        "--redis-aof/--no-redis-aof",
        help="Redis appendonly (fsync always): the seed's persistence.aof_enabled.",
    ),
    redis_snapshot_interval: int = typer.Option(
        300,
        "--redis-snapshot-interval",
        min=0,
        help="Redis RDB snapshot every N seconds if a key changed (0: off): "
        "the seed's persistence.snapshot_interval.",
    ),
    etcd: int = typer.Option(
        0,
        "--etcd",
        min=0,
        help="Also start etcd (Debian's etcd-server): 1 member, or 3 for a cluster; "
        "exports ETCD_ENDPOINTS for distributed.coordination.endpoints.",
    ),
    prometheus: bool = typer.Option(
        False, "--prometheus", help="Also Prometheus, scraping the default metrics ports."
    ),
) -> None:
    """Start Kafka, PostgreSQL and S3, print their exports, stop them on Ctrl-C / SIGTERM."""
    err = Console(stderr=True)
    try:
        redis_opts = _RedisOptions(redis, redis_cluster, redis_aof, redis_snapshot_interval)
        code = asyncio.run(
            _up(
                data_dir,
                kafka.value,
                err,
                kafka_brokers,
                kafka_sasl,
                redis_opts,
                etcd,
                prometheus,
            )
        )
    except DevstackError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("jars")
def jars() -> None:
    """Download Apache Kafka's jars into the user cache (once) and print their directory."""
    try:
        path = ensure_kafka_jars()
    except DevstackError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    Console(stderr=True).print(f"Apache Kafka {KAFKA_VERSION} jars:", highlight=False)
    Console(soft_wrap=True).print(str(path), highlight=False, markup=False)


@dataclass(frozen=True)
class _RedisOptions:
    standalone: bool = False
    cluster: bool = False
    appendonly: bool = True
    snapshot_interval: int = 300


def _etcd(members: int, data_dir: Path | None) -> EtcdServer | EtcdCluster | None:
    where = None if data_dir is None else data_dir / "etcd"
    if members == 0:
        return None
    return EtcdServer(where) if members == 1 else EtcdCluster(where, members=members)


async def _up(
    data_dir: Path | None,
    kafka: str,
    err: Console,
    brokers: int = 1,
    sasl: bool = False,
    redis: _RedisOptions = _RedisOptions(),
    etcd_members: int = 0,
    prometheus: bool = False,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # All three are started here, even if the shell still exports an earlier run's env vars.
    stack = DevStack(
        data_dir,
        kafka_impl=cast(KafkaChoice, kafka),
        environ={},
        kafka_brokers=brokers,
        kafka_sasl=sasl,
        redis=redis.standalone,
        redis_cluster=redis.cluster,
        redis_appendonly=redis.appendonly,
        redis_snapshot_interval=redis.snapshot_interval or None,
        prometheus=prometheus,
    )
    etcd = _etcd(etcd_members, data_dir)
    stopping = asyncio.create_task(stop.wait())
    try:
        with err.status("starting Kafka, PostgreSQL and S3…"):
            starting = asyncio.create_task(_start(stack, etcd))
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            await cancel_and_wait(starting)
            await stack.stop()
            err.print("interrupted during start-up; stopped what had started")
            return 130
        endpoints = starting.result()
        if stack.prometheus is not None:
            stack.prometheus.scrape_defaults()
        err.print(stack.summary(), highlight=False, markup=False, soft_wrap=True)
        _print_exports(endpoints)
        if etcd is not None:
            err.print(f"etcd: {etcd.description}", highlight=False, markup=False)
            urls = ",".join(f"http://{e}" for e in etcd.endpoints)
            Console(soft_wrap=True).print(f"export ETCD_ENDPOINTS={urls}", markup=False)
        err.print("[green]ready[/]; press Ctrl-C to stop")
        await stopping
        with err.status("stopping…"):
            await stack.stop()
        err.print("stopped")
        return 0
    finally:
        stopping.cancel()
        await stack.stop()
        if etcd is not None:
            await etcd.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start(stack: DevStack, etcd: EtcdServer | EtcdCluster | None) -> ServiceEndpoints:
    if etcd is not None:
        await etcd.start()
    return await stack.start()


def _print_exports(endpoints: ServiceEndpoints) -> None:
    out = Console(soft_wrap=True)
    for key, value in endpoints.as_env().items():
        out.print(f"export {key}={shlex.quote(value)}", highlight=False, markup=False)
