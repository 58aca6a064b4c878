"""Compose parity: every app service of docker-compose.yml, run as Docker would run it.

There is no Docker engine here, so each service's exact ``command`` runs as a process
with the environment its container would have (the image's ``ENV`` plus the service's
``environment``, ``${VAR}`` interpolated), the stack's addresses (``kafka:9092``,
``postgres:5432``, ``s3:8333``, the API's 8080) rewritten to the harness's servers on
loopback, and the working directory and ``/tmp`` of its own. Then:

* ``init`` exits 0, the topics and tables exist, and its health check passes;
* ``projector``, ``snapshotter``, ``supervisor`` and ``api`` run side by side, each
  passes its own compose health check, together they project, snapshot and serve an
  execution, the supervisor leads recovery, and SIGTERM stops each one with exit 0,
  after which its health check fails;
* the image's own ``CMD`` and ``HEALTHCHECK`` (the Dockerfile) do the same for the API.

A compose change that breaks a service's command, environment or health check breaks
this test. tests/unit/test_compose_file.py checks the files themselves.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from orchestrator.app import plan_app
from orchestrator.config import Settings
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events.codec import default_codec
from orchestrator.events.log import EventLog
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.topics import ensure_topics
from orchestrator.projections.migrator import migrate
from tests import compose_files

pytestmark = pytest.mark.slow

LONG_RUNNING = ("projector", "snapshotter", "supervisor", "api")
TOKEN = f"parity-{uuid.uuid4().hex}"
VARIABLES = {"POSTGRES_PASSWORD": "parity-password", "ORCHESTRATOR_API_TOKEN": TOKEN}
PENDING = {"migrate": "H1 adds `orchestrator-state migrate`", "topics": "H1 adds `topics`"}
HEALTHY_WITHIN_S = 180.0
STOPPED_WITHIN_S = 60.0
_ADDRESS = re.compile(r"\b(kafka|postgres|s3):(\d+)\b")


@dataclass
class Stack:
    """The harness's servers, seen through the compose file's names."""

    compose: dict[str, Any]
    image: compose_files.Dockerfile
    addresses: dict[str, str]  # "kafka:9092" -> "127.0.0.1:NNNN"
    database: str
    api_port: int
    root: Path
    supports_idempotence: bool

    def rewrite(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(0) not in self.addresses:
                raise AssertionError(f"{match.group(0)}: the stack serves no such address")
            return self.addresses[match.group(0)]

        text = _ADDRESS.sub(one, text).replace("0.0.0.0", "127.0.0.1")
        return re.sub(r"(?<=127\.0\.0\.1:)8080\b", str(self.api_port), text)

    def argv(self, argv: list[str]) -> list[str]:
        return [str(self.api_port) if a == "8080" else self.rewrite(a) for a in argv]

    def env(self, name: str, service_env: dict[str, str]) -> dict[str, str]:
        """The container's environment: image ENV, then the service's, rewritten."""
        home = self.root / name
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
        }
        for key, value in {**self.image.env, **service_env}.items():
            value = self.rewrite(value)
            if value.startswith("/tmp/"):
                value = str(home / "tmp" / value.removeprefix("/tmp/"))
            env[key] = value
        if "DATABASE_URL" in env:
            dsn = urlsplit(env["DATABASE_URL"])
            env["DATABASE_URL"] = urlunsplit(dsn._replace(path=f"/{self.database}"))
        if not self.supports_idempotence:  # Tansu (no Java): say so, as a user would
            env["KAFKA_SUPPORTS_IDEMPOTENCE"] = "false"
        leftover = [v for v in env.values() if _ADDRESS.search(v)]
        assert not leftover, leftover
        return env


@pytest.fixture(scope="module")
async def stack(
    services: ServiceEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    compose = compose_files.load_compose(VARIABLES)
    dsn = urlsplit(compose_files.environment(compose["services"]["projector"])["DATABASE_URL"])
    assert services.database_url and services.s3_endpoint_url
    server = urlsplit(services.database_url)
    database = f"compose_parity_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(services.database_url)
    try:
        try:
            await admin.execute(f"CREATE ROLE {dsn.username} LOGIN PASSWORD '{dsn.password}'")
        except asyncpg.DuplicateObjectError:
            pass
        await admin.execute(f'CREATE DATABASE "{database}" OWNER {dsn.username}')
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            api_port = sock.getsockname()[1]
        yield Stack(
            compose=compose,
            image=compose_files.load_dockerfile(),
            addresses={
                "kafka:9092": services.kafka.bootstrap_servers,
                "postgres:5432": f"{server.hostname}:{server.port}",
                "s3:8333": urlsplit(services.s3_endpoint_url).netloc,
            },
            database=database,
            api_port=api_port,
            root=tmp_path_factory.mktemp("compose"),
            supports_idempotence=services.kafka.supports_idempotence,
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _run(argv: list[str], env: dict[str, str], cwd: Path, limit: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


def _pending(argv: list[str]) -> str | None:
    """Why a command cannot run in this branch yet (another branch adds it), if so."""
    for command in compose_files.shell_commands(argv):
        problem = compose_files.resolve_cli(command)
        if problem in PENDING:
            return f"`{' '.join(command)}`: {PENDING[problem]}"
    return None


@dataclass
class Init:
    skipped: str | None
    code: int = 0
    output: str = ""


@pytest.fixture(scope="module")
async def init(stack: Stack) -> Init:
    """Run the init service; without its commands (another branch), prepare as it would."""
    service = stack.compose["services"]["init"]
    argv = stack.argv(compose_files.as_argv(service["command"]))
    env = stack.env("init", compose_files.environment(service))
    pending = _pending(argv)
    if pending is None:
        code, output = await _run(argv, env, stack.root / "init", limit=240)
        return Init(None, code, output)
    plan = _plan(env)
    await ensure_topics(plan.bootstrap, plan.topics.specs())
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return Init(pending)


def _plan(env: dict[str, str]) -> Any:
    endpoints = ServiceEndpoints.from_env(env)
    return plan_app(
        Settings(),
        bootstrap=endpoints.kafka_bootstrap,
        dsn=endpoints.database_url,
        node_id="parity-test",
    )


async def test_init_migrates_creates_topics_and_passes_its_health_check(
    stack: Stack, init: Init
) -> None:
    if init.skipped:
        pytest.skip(f"init needs a command not in this branch: {init.skipped}")
    assert init.code == 0, init.output
    service = stack.compose["services"]["init"]
    env = stack.env("init", compose_files.environment(service))
    plan = _plan(env)
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=plan.bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {spec.name for spec in plan.topics.specs()} <= topics
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
    assert {"pipeline_states", "task_states", "checkpoints", "execution_events"} <= tables
    code, output = await _run(
        stack.argv(compose_files.healthcheck_argv(service)), env, stack.root / "init", limit=120
    )
    assert code == 0, output


@dataclass
class Running:
    """One started service: its process, what it was started with, and its log."""

    name: str
    process: asyncio.subprocess.Process
    env: dict[str, str]
    cwd: Path
    health: list[str]
    log: Path

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


async def _start(
    stack: Stack, name: str, argv: list[str], env: dict[str, str], health: list[str]
) -> Running:
    cwd = stack.root / name
    log = cwd / "service.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    return Running(name, process, env, cwd, health, log)


async def _until_healthy(service: Running) -> None:
    """Run the service's own health check until it passes (the process must stay up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEALTHY_WITHIN_S
    output = ""
    while loop.time() < deadline:
        if service.process.returncode is not None:
            raise AssertionError(
                f"{service.name} exited {service.process.returncode} before it was healthy\n"
                + service.tail()
            )
        code, output = await _run(service.health, service.env, service.cwd, limit=60)
        if code == 0:
            return
        await asyncio.sleep(1.0)
    raise AssertionError(
        f"{service.name} not healthy in {HEALTHY_WITHIN_S:g}s: {output}\n" + service.tail()
    )


async def _stop_all(services: dict[str, Running]) -> None:
    for service in services.values():
        if service.process.returncode is None:
            service.process.kill()
            await service.process.wait()


@pytest.fixture(scope="module")
async def running(stack: Stack, init: Init) -> AsyncIterator[dict[str, Running]]:
    """The long-running services, started side by side as `docker compose up` would."""
    if init.code != 0:
        pytest.fail(f"init failed:\n{init.output}")
    started: dict[str, Running] = {}
    try:
        for name in LONG_RUNNING:
            service = stack.compose["services"][name]
            started[name] = await _start(
                stack,
                name,
                stack.argv(compose_files.as_argv(service["command"])),
                stack.env(name, compose_files.environment(service)),
                stack.argv(compose_files.healthcheck_argv(service)),
            )
        await asyncio.gather(*(_until_healthy(s) for s in started.values()))
        yield started
    finally:
        await _stop_all(started)


@pytest.mark.parametrize("name", LONG_RUNNING)
async def test_each_service_passes_its_own_health_check(
    running: dict[str, Running], name: str
) -> None:
    service = running[name]
    code, output = await _run(service.health, service.env, service.cwd, limit=60)
    assert code == 0, output + service.tail()
    assert service.process.returncode is None


async def test_together_they_project_snapshot_and_serve_an_execution(
    stack: Stack, running: dict[str, Running]
) -> None:
    env = running["projector"].env
    plan = _plan(env)
    execution_id = f"parity-{uuid.uuid4().hex[:8]}"
    events = simulate_execution(execution_id, random.Random(11), tasks=3, takeovers=False)
    log = EventLog(
        plan.bootstrap,
        default_codec(),
        topics=plan.topics,
        supports_idempotence=stack.supports_idempotence,
    )
    await log.start()
    try:
        await log.append_batch(events)
    finally:
        await log.stop()
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        status = await _poll(
            lambda: conn.fetchval(
                "SELECT status FROM pipeline_states WHERE execution_id = $1", execution_id
            ),
            "the projector to write the execution's read model",
            running,
        )
        assert status in ("completed", "failed", "cancelled")
        await _poll(
            lambda: conn.fetchval(
                "SELECT object_key FROM snapshots WHERE execution_id = $1", execution_id
            ),
            "the snapshotter to snapshot the finished execution",
            running,
        )
    finally:
        await conn.close()
    url = f"http://127.0.0.1:{stack.api_port}/executions/{execution_id}"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(url)).status_code == 401  # the token is required
        answer = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["execution_id"] == execution_id


async def test_the_supervisor_leads_recovery(running: dict[str, Running]) -> None:
    env = running["supervisor"].env
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        holder = await _poll(
            lambda: conn.fetchval(
                "SELECT holder FROM leases WHERE name = 'leader/recovery_supervisor' "
                "AND expires_at > now()"
            ),
            "the supervisor to win the recovery election",
            running,
        )
    finally:
        await conn.close()
    assert holder.startswith("supervisor-")


@pytest.mark.parametrize("name", LONG_RUNNING)
async def test_sigterm_stops_each_service_cleanly_and_its_health_check_then_fails(
    running: dict[str, Running], name: str
) -> None:
    service = running[name]
    assert service.process.returncode is None, service.tail()
    service.process.send_signal(signal.SIGTERM)  # what `docker compose stop` sends
    code = await asyncio.wait_for(service.process.wait(), STOPPED_WITHIN_S)
    assert code == 0, service.tail()
    assert "Traceback" not in service.log.read_text(errors="replace"), service.tail()
    code, output = await _run(service.health, service.env, service.cwd, limit=60)
    assert code != 0, f"{name}'s health check passes with the service stopped: {output}"


async def test_the_image_default_command_and_healthcheck_serve_the_api(
    stack: Stack, init: Init
) -> None:
    """The Dockerfile's CMD and HEALTHCHECK, with the api service's environment."""
    if init.code != 0:
        pytest.fail(f"init failed:\n{init.output}")
    image = stack.image
    env = stack.env("image", compose_files.environment(stack.compose["services"]["api"]))
    service = await _start(
        stack, "image", stack.argv(image.cmd), env, stack.argv(image.healthcheck)
    )
    try:
        await _until_healthy(service)
        health = f"http://127.0.0.1:{stack.api_port}/health"
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(health)).status_code == 200
        service.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(service.process.wait(), STOPPED_WITHIN_S) == 0
        code, _ = await _run(service.health, service.env, service.cwd, limit=60)
        assert code != 0
    finally:
        await _stop_all({"image": service})


async def _poll(read: Any, what: str, running: dict[str, Running], within: float = 90.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        value = await read()
        if value is not None:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"gave up waiting for {what}\n" + "\n".join(s.tail(30) for s in running.values())
    )
