"""Real Kafka, PostgreSQL and S3 (and Redis, when asked) for the integration tests.

One `DevStack` per session starts, concurrently and on free loopback ports, every
service the collected tests ask for (through the `kafka`, `postgres`, `s3` or
`services` fixtures; Redis only for a test naming `redis` or `redis_cluster`); env
vars (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, S3_ENDPOINT_URL, REDIS_URL,
REDIS_CLUSTER_URL, ...) point at external services instead. Kafka is Apache Kafka
from its jars when Java is available. When a test fails, the tail of each
service log it used is attached to its report.

Fresh state on those services: a topic name per test (`topic`, `make_topic`); a
database with the read-model tables per module (`dsn`, with `pool` and `db` on it);
databases and whole projections (topics, settings, database) per test
(`make_database`, `make_projection`).

Shared set-ups (one place each): `connect_env` (what `orchestrator.connect()` reads:
the broker and a fresh empty database), `start_app` (the test process's App: processor
and recovery supervisor, `_worker.supervising_app`), `coordination` (runs a test with
leases on PostgreSQL and on etcd), `make_saver_spec` (a LangGraph saver's spec).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from _databases import MakeDatabase, database_prefix, fresh_database
from _langgraph_support import MakeSaverSpec, saver_spec
from _projector_support import MakeProjection, Projection, fresh_topics, settings_for
from _worker import StartApp, coordination_yaml, supervising_app

from orchestrator.app import App
from orchestrator.devstack import (
    DevStack,
    EtcdCluster,
    EtcdServer,
    KafkaEndpoint,
    PrometheusServer,
    RedisCluster,
    RedisServer,
    S3Endpoint,
    ServiceEndpoints,
    create_topic,
    describe_kafka,
)
from orchestrator.projections.processor import prepare
from tests.server_fixtures import server_fixture

HERE = Path(__file__).parent
_STACK = pytest.StashKey[DevStack]()
_LOG_LINES = 40
# Fixture that reaches each service, for "which services do the collected tests need".
_SERVICE_FIXTURES = {"kafka": "kafka", "postgres": "postgres", "s3": "s3"}
# Servers only a test that names them starts (`services` does not include them).
_OPTIONAL_FIXTURES = {
    "redis": "redis",
    "redis_cluster": "redis_cluster",
    "prometheus": "prometheus",
}
# A server's name (its log section) -> the fixture that uses it.
_LOG_FIXTURES = {**_SERVICE_FIXTURES, "redis-cluster": "redis_cluster", "redis": "redis"}

MakeTopic = Callable[..., Awaitable[str]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/integration is marked `integration`."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Name the Kafka the session will use, so a CI log says which broker ran the tests."""
    if not any(item.path.is_relative_to(HERE) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"integration services: Kafka = {describe_kafka()}")


def _print_uncaptured(config: pytest.Config, text: str) -> None:
    """Write to the terminal even from inside a fixture (where stdout is being captured)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(text)


def _needed(items: list[pytest.Item]) -> dict[str, bool]:
    names: set[str] = set()
    for item in items:
        names.update(getattr(item, "fixturenames", ()))
    every = "services" in names
    needed = {service: every or fixture in names for service, fixture in _SERVICE_FIXTURES.items()}
    needed.update({service: fixture in names for service, fixture in _OPTIONAL_FIXTURES.items()})
    return needed


@pytest.fixture(scope="session")
async def devstack(request: pytest.FixtureRequest) -> AsyncIterator[DevStack]:
    """The session's services: everything the collected tests need, started at once."""
    stack = DevStack(kafka=False, postgres=False, s3=False)
    request.config.stash[_STACK] = stack
    try:
        await stack.require(**_needed(request.session.items))
        if stack.endpoints != ServiceEndpoints():
            _print_uncaptured(request.config, stack.summary())
        yield stack
    finally:
        await stack.stop()


@pytest.fixture(scope="session")
async def sasl_kafka() -> AsyncIterator[DevStack]:
    """A broker of its own that wants SASL/SCRAM-SHA-512 and enforces ACLs (the session's
    broker stays plain): ``.endpoints`` log in as ``app`` (granted the product's ACLs),
    ``.scram`` holds the passwords of ``admin``, ``app`` and ``guest`` (no ACL)."""
    stack = DevStack(kafka=True, postgres=False, s3=False, kafka_sasl=True, environ={})
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


etcd = server_fixture(
    EtcdServer,
    "One etcd member (Debian's etcd-server) on loopback, for coordination tests.",
    scope="session",
)
etcd_cluster = server_fixture(
    lambda: EtcdCluster(members=3),
    "A 3-member etcd cluster of the test's own (it may kill members).",
)


@pytest.fixture(scope="session")
async def kafka(devstack: DevStack) -> KafkaEndpoint:
    """The broker: `.bootstrap_servers`, `.supports_idempotence`, `.description`."""
    return (await devstack.require(kafka=True)).kafka


@pytest.fixture(scope="session")
async def postgres(devstack: DevStack) -> str:
    """A DSN of the `postgres` database (superuser, trust auth); create your own database."""
    dsn = (await devstack.require(postgres=True)).database_url
    assert dsn is not None
    return dsn


@pytest.fixture(scope="session")
async def s3(devstack: DevStack) -> S3Endpoint:
    """The S3 store: `.endpoint_url`, `.bucket` (exists), credentials, `.client()`."""
    return (await devstack.require(s3=True)).s3


@pytest.fixture(scope="session")
async def redis(devstack: DevStack) -> str:
    """A standalone Redis's URL (AOF on). Use a fresh ``key_prefix`` per test; a test that
    kills it uses ``devstack.redis.restart(kill=True)`` (None when REDIS_URL names one)."""
    url = (await devstack.require(redis=True)).redis_url
    assert url is not None
    return url


@pytest.fixture(scope="session")
async def redis_cluster(devstack: DevStack) -> str:
    """One node's URL of a 3-node Redis cluster (no replicas, AOF on); clients discover the
    others. ``devstack.redis_cluster.kill(i)`` / ``.resume(i)`` for fault tests."""
    url = (await devstack.require(redis_cluster=True)).redis_cluster_url
    assert url is not None
    return url


_Server = TypeVar("_Server")


def _ours(server: _Server | None, variable: str, what: str) -> _Server:
    """The server this session started, or skip: ``variable`` names an external one."""
    if server is None:
        pytest.skip(f"{variable} names an external {what}: not ours to kill")
    return server


@pytest.fixture
def killable_redis(redis: str, devstack: DevStack) -> RedisServer:
    """The standalone Redis this session started, for a test that kills it."""
    return _ours(devstack.redis, "REDIS_URL", "Redis")


@pytest.fixture
def killable_redis_cluster(redis_cluster: str, devstack: DevStack) -> RedisCluster:
    """The Redis cluster this session started, for a test that kills a node."""
    return _ours(devstack.redis_cluster, "REDIS_CLUSTER_URL", "cluster")


@pytest.fixture(scope="session")
async def prometheus(devstack: DevStack) -> PrometheusServer:
    """Debian's Prometheus, scraping every second what ``.set_targets(job, [...])`` names,
    with the shipped alert rules loaded; ``.query(expr)``, ``.url``."""
    await devstack.require(prometheus=True)
    assert devstack.prometheus is not None
    return devstack.prometheus


@pytest.fixture(scope="session")
async def services(devstack: DevStack) -> ServiceEndpoints:
    """All three; `.as_env()` gives the env vars for a subprocess."""
    return await devstack.require(kafka=True, postgres=True, s3=True)


@pytest.fixture
def require_idempotence(kafka: KafkaEndpoint) -> None:
    """Skip the test on a broker without idempotent/transactional producers (Tansu)."""
    if not kafka.supports_idempotence:
        pytest.skip(f"{kafka.description}: no idempotent or transactional producer")


@pytest.fixture(autouse=True)
def _requires_idempotence_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("requires_idempotence") is not None:
        request.getfixturevalue("require_idempotence")


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A fresh topic name for this test (not created: see `make_topic`)."""
    return _topic_name(request.node.name)


@pytest.fixture
def make_topic(kafka: KafkaEndpoint, request: pytest.FixtureRequest) -> MakeTopic:
    """`await make_topic(partitions=1, name=None, config=None)` creates a topic; returns it."""

    async def make(
        partitions: int = 1, *, name: str | None = None, config: Mapping[str, str] | None = None
    ) -> str:
        name = name or _topic_name(request.node.name)
        await create_topic(kafka.bootstrap_servers, name, partitions=partitions, config=config)
        return name

    return make


def _topic_name(test_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-")[:60]
    return f"test-{slug}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_database(
    postgres: str, request: pytest.FixtureRequest
) -> AsyncIterator[MakeDatabase]:
    """`await make_database(migrated=True)` creates a database on the session's server and
    returns its DSN (read-model tables unless not `migrated`); all dropped after the test."""
    async with contextlib.AsyncExitStack() as databases:

        async def make(*, migrated: bool = True) -> str:
            prefix = database_prefix(request.node.name)
            return await databases.enter_async_context(
                fresh_database(postgres, prefix, migrated=migrated)
            )

        yield make


@pytest.fixture
async def connect_env(kafka: KafkaEndpoint, make_database: MakeDatabase) -> dict[str, str]:
    """The environment ``orchestrator.connect(environ=...)`` reads: the session's broker
    and a fresh database without tables (connect migrates it)."""
    dsn = await make_database(migrated=False)
    return {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "DATABASE_URL": dsn}


@pytest.fixture(scope="module")
async def dsn(postgres: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh database with the read-model tables, shared by the module's tests.

    A module that needs rows or tables in it overrides `dsn` with a module fixture that
    requests `dsn`, adds them and returns it."""
    async with fresh_database(postgres, database_prefix(request.module.__name__)) as created:
        yield created


@pytest.fixture(scope="module")
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the module's `dsn`, large enough for the tests' concurrent holders."""
    async with asyncpg.create_pool(dsn, min_size=1, max_size=14) as created:
        yield created


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the module's `dsn`, closed after the test."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def make_projection(kafka: KafkaEndpoint, make_database: MakeDatabase) -> MakeProjection:
    """`await make_projection(partitions=6, prepared=True, **settings)`: fresh topics (and
    DLQs), a fresh empty database, and the projection's settings over them; `prepared`
    runs the processor's `prepare` (migrations, offsets) as a deployment would."""

    async def make(partitions: int = 6, *, prepared: bool = True, **settings: object) -> Projection:
        topics = await fresh_topics(kafka.bootstrap_servers, partitions)
        projection = settings_for(topics, **settings)  # type: ignore[arg-type]
        dsn = await make_database(migrated=False)
        if prepared:
            await prepare(projection, dsn, kafka.bootstrap_servers)
        return Projection(topics, projection, dsn)

    return make


@pytest.fixture
async def start_app(
    services: ServiceEndpoints, make_database: MakeDatabase, tmp_path: Path
) -> AsyncIterator[StartApp]:
    """`await start_app(name=, node_id=, crash_timeout=, failover_timeout=, **options)`: the
    test process's App (`_worker.supervising_app`) on a fresh database, stopped after the
    test."""
    async with contextlib.AsyncExitStack() as apps:

        async def start(**options: Any) -> App:
            dsn = await make_database(migrated=False)
            return await apps.enter_async_context(
                supervising_app(services, dsn, tmp_path, **options)
            )

        yield start


@pytest.fixture
def make_saver_spec(
    services: ServiceEndpoints, make_database: MakeDatabase, tmp_path: Path
) -> MakeSaverSpec:
    """`await make_saver_spec(**extra)`: a LangGraph saver's spec (`saver_spec`) on fresh
    topics and a fresh empty database."""

    async def make(**extra: Any) -> dict[str, Any]:
        return saver_spec(services, await make_database(migrated=False), tmp_path, **extra)

    return make


@pytest.fixture(params=["postgresql", "etcd"])
def coordination(request: pytest.FixtureRequest, etcd: EtcdServer) -> str:
    """The test runs twice: leases on PostgreSQL (the default, no YAML) and on etcd (its
    `distributed.coordination` block, for `start_app(extra_yaml=...)` and the workers)."""
    return coordination_yaml(request.param, etcd.endpoint)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the tail of the log of each local service the test used."""
    report = yield
    stack = item.config.stash.get(_STACK, None)
    if report.failed and report.when in ("setup", "call") and stack is not None:
        used = set(getattr(item, "fixturenames", ()))
        for name, tail in stack.log_tails(_LOG_LINES).items():
            fixture = _LOG_FIXTURES.get(name, name)
            if fixture in used or ("services" in used and fixture in _SERVICE_FIXTURES):
                report.sections.append((f"{name} log (last {_LOG_LINES} lines)", tail))
    return report
